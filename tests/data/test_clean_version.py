from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from modelyard.cli import app
from modelyard.data.cleaning import Recipe
from modelyard.data.cleaning.versions import clean_version
from modelyard.data.datasets import add_dataset, lineage, load_dataset
from modelyard.data.demo import make_loans
from modelyard.data.splits import make_split
from modelyard.project import Project


def test_clean_version_is_fitted_on_train_rows_and_linked(project: Project) -> None:
    frame = make_loans(3_000, seed=5)
    raw = add_dataset(project, "loans", frame)
    recipe = Recipe.from_spec_like(list(project.spec.cleaning))
    clean = clean_version(project, "loans@1", recipe)
    assert (clean.kind, clean.version, clean.parents) == ("clean", 2, (raw.ref,))
    _, rows = load_dataset(project, clean.ref)
    assert len(rows) == len(frame)
    assert set(rows["home_ownership"]) <= {"rent", "mortgage", "own", "other"}
    train = make_split(frame, project.spec, seed=42).positions(frame).train
    cap = frame["income"].iloc[train].quantile(0.999)
    assert rows["income"].max() <= cap + 1e-9
    assert clean.transformation["report"]["fit_rows"] == len(train)
    assert [c.version.ref for c in lineage(project, raw.ref).children] == [clean.ref]


def test_cli_clean_uses_the_spec_recipe_or_a_file(project: Project, tmp_path: Path) -> None:
    add_dataset(project, "loans", make_loans(1_000, seed=6))
    runner, spec = CliRunner(), ["--spec", str(project.spec_path)]
    done = runner.invoke(app, [*spec, "data", "clean", "loans@1"])
    assert done.exit_code == 0, done.output
    assert "loans@2 (clean)" in done.output
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("- step: impute\n  columns: [income]\n  strategy: median\n")
    done = runner.invoke(app, [*spec, "data", "clean", "loans@1", "--recipe", str(recipe)])
    assert done.exit_code == 0, done.output
    _, rows = load_dataset(project, "loans@3")
    assert not rows["income"].isna().any()
    assert isinstance(rows, pd.DataFrame)
    recipe.write_text("- step: impute\n  colums: [income]\n")
    bad = runner.invoke(app, [*spec, "data", "clean", "loans@1", "--recipe", str(recipe)])
    assert bad.exit_code != 0
