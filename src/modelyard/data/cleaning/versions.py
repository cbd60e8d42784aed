"""Cleaning a dataset version: a recipe fitted on its training split, kept as a ``clean`` version.

The recipe is fitted on the training rows of the split the spec implies (so the
statistics a step learns never see validation or test rows), replayed on every
other row exactly as serving will, and the result is registered as a ``clean``
version whose parent is the input and whose transformation holds the fitted
recipe and what each step changed.
"""

from __future__ import annotations

from modelyard.data.cleaning.recipe import Recipe, apply_recipe
from modelyard.data.datasets import DatasetVersion, add_dataset, load_dataset
from modelyard.data.splits import make_split
from modelyard.project import Project


def clean_version(
    project: Project, ref: str, recipe: Recipe, *, name: str | None = None, seed: int = 42
) -> DatasetVersion:
    """Apply ``recipe`` to version ``ref``; returns the new ``clean`` version."""
    parent, frame = load_dataset(project, ref)
    split = make_split(frame, project.spec, seed=seed)
    clean, report = apply_recipe(frame, recipe, fit_rows=split.positions(frame).train)
    transformation = {"recipe": recipe.to_dict(), "report": report, "fit_split": split.describe()}
    return add_dataset(
        project,
        name or parent.name,
        clean,
        kind="clean",
        parents=(parent.id,),
        transformation=transformation,
    )
