"""Cleaning and normalisation as recorded, replayable steps (R2.3).

The object model::

    Recipe([step, ...])            fit on the training rows only, saved as plain JSON
      ├── Impute                   missing values ← median / mean / most frequent / constant
      ├── Deduplicate              row filter: repeated training rows dropped
      ├── ClipOutliers             values clipped to bounds (IQR, quantiles, z-score)
      ├── DropOutliers             row filter: rows out of bounds dropped (clipped at serving)
      ├── StandardiseUnits         per-row units converted to one unit
      └── NormaliseCategories      one spelling per category; rare and unseen → rare label

Every step follows the scikit-learn contract (parameters in the constructor,
``fit`` returns self, learned state ends in ``_``) and replays its fitted
state two ways that agree value for value: ``transform`` on a pandas frame
(training, batch, a ``clean`` dataset version) and ``transform_record`` on
one JSON record in plain Python (the server's hot path). Row filters drop
rows only from training data; a served request is always answered.

``Recipe.to_dict`` / ``Recipe.from_dict`` save and load plain JSON (a
``format`` key, the steps' parameters and learned state): loading never runs
code. ``Recipe.from_spec_like`` builds a recipe from config, and
``apply_recipe`` cleans a whole data set, fitting on its training rows.
"""

from modelyard.data.cleaning._step import NotFittedStepError, Step
from modelyard.data.cleaning.categories import NormaliseCategories
from modelyard.data.cleaning.deduplicate import Deduplicate
from modelyard.data.cleaning.impute import Impute
from modelyard.data.cleaning.outliers import ClipOutliers, DropOutliers
from modelyard.data.cleaning.recipe import FORMAT, STEPS, Recipe, apply_recipe
from modelyard.data.cleaning.units import StandardiseUnits

__all__ = [
    "FORMAT",
    "STEPS",
    "ClipOutliers",
    "Deduplicate",
    "DropOutliers",
    "Impute",
    "NormaliseCategories",
    "NotFittedStepError",
    "Recipe",
    "StandardiseUnits",
    "Step",
    "apply_recipe",
]
