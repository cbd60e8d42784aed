"""Model families: what can be trained, its default parameters and its search space.

A ``Family`` is plain data plus one ``fit`` function. Training, search and
reproduction all go through the same three members:

    family.defaults(task, seed)  -> params          the untuned starting point
    family.space                 -> {name: Param}   what search may vary
    family.fit(data, params)     -> fitted model    saved by ``flavors.dump(family.flavor, model)``

``fit`` must be deterministic for fixed params (they include ``seed``) and
must not look at anything but ``data``: that is what makes a run reproducible.
Baselines come first in ``FAMILIES``: a candidate that cannot beat them is not
worth its serving cost.

Output convention of a fitted model's scorer (``flavors.load``): binary → P(positive)
of shape (n,), multiclass → probabilities (n, k), regression → predictions (n,).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelyard.data.encoding import FeatureEncoder

TASKS = ("binary", "multiclass", "regression")


@dataclass(frozen=True)
class TrainingData:
    """Encoded training and validation rows, and what a family needs to know about them."""

    X: np.ndarray
    y: np.ndarray
    X_valid: np.ndarray
    y_valid: np.ndarray
    encoder: FeatureEncoder
    task: str
    n_classes: int = 2
    sample_weight: np.ndarray | None = None


@dataclass(frozen=True)
class Float:
    low: float
    high: float
    log: bool = False
    grid: tuple[float, ...] = ()


@dataclass(frozen=True)
class Int:
    low: int
    high: int
    log: bool = False
    grid: tuple[int, ...] = ()


@dataclass(frozen=True)
class Choice:
    values: tuple[Any, ...]


Param = Float | Int | Choice


@dataclass(frozen=True)
class Family:
    """A model family: name, how it is saved, where it applies, and how to fit it."""

    name: str
    flavor: str
    tasks: frozenset[str]
    defaults: Callable[[str, int], dict[str, Any]]
    fit: Callable[[TrainingData, dict[str, Any]], Any]
    space: Mapping[str, Param] = field(default_factory=dict)
    baseline: bool = False


def _logistic_defaults(task: str, seed: int) -> dict[str, Any]:
    return {"C": 1.0, "class_weight": None, "max_iter": 1000, "seed": seed}


def _fit_logistic(data: TrainingData, params: dict[str, Any]) -> Any:
    """Median-imputed, scaled numbers and one-hot categories into a logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    model = LogisticRegression(
        C=params["C"],
        class_weight=params["class_weight"],
        max_iter=params["max_iter"],
        random_state=params["seed"],
    )
    pipeline = Pipeline([("prep", linear_preprocessing(data.encoder)), ("model", model)])
    return pipeline.fit(data.X, data.y, model__sample_weight=data.sample_weight)


def linear_preprocessing(encoder: FeatureEncoder) -> Any:
    """Impute and scale numbers, one-hot categories (unseen and missing → all zeros)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    categorical = encoder.categorical_indices
    numeric = [i for i in range(len(encoder.fields)) if i not in categorical]
    categories = make_pipeline(
        SimpleImputer(strategy="constant", fill_value=-1), OneHotEncoder(handle_unknown="ignore")
    )
    numbers = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    return ColumnTransformer(
        [("numbers", numbers, numeric), ("categories", categories, categorical)]
    )


def _lightgbm_defaults(task: str, seed: int) -> dict[str, Any]:
    return {
        "objective": "binary",
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_data_in_leaf": 40,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.9,
        "bagging_freq": 1,
        "num_boost_round": 600,
        "early_stopping_rounds": 40,
        "seed": seed,
        "deterministic": True,
        "num_threads": 2,
        "verbose": -1,
    }


def _fit_lightgbm(data: TrainingData, params: dict[str, Any]) -> Any:
    """Gradient-boosted trees with native categories and early stopping on validation."""
    import lightgbm as lgb

    rounds = ("num_boost_round", "early_stopping_rounds")
    booster_params = {k: v for k, v in params.items() if k not in rounds}
    train = lgb.Dataset(
        data.X,
        data.y,
        weight=data.sample_weight,
        categorical_feature=data.encoder.categorical_indices,
        free_raw_data=False,
    )
    valid = lgb.Dataset(data.X_valid, data.y_valid, reference=train)
    return lgb.train(
        booster_params,
        train,
        num_boost_round=params["num_boost_round"],
        valid_sets=[valid],
        callbacks=[lgb.early_stopping(params["early_stopping_rounds"], verbose=False)],
    )


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "logistic",
            "sklearn",
            frozenset({"binary"}),
            _logistic_defaults,
            _fit_logistic,
            space={"C": Float(1e-3, 1e2, log=True, grid=(0.01, 0.1, 1.0, 10.0))},
            baseline=True,
        ),
        Family(
            "lightgbm",
            "lightgbm",
            frozenset({"binary"}),
            _lightgbm_defaults,
            _fit_lightgbm,
            space={
                "learning_rate": Float(0.01, 0.3, log=True, grid=(0.03, 0.1)),
                "num_leaves": Int(8, 128, log=True, grid=(15, 31, 63)),
                "min_data_in_leaf": Int(5, 200, log=True, grid=(20, 80)),
                "feature_fraction": Float(0.5, 1.0),
            },
        ),
    )
}


def families_for(task: str, names: list[str] | None = None) -> list[Family]:
    """The families that apply to ``task`` (baselines first), or the ``names`` asked for."""
    chosen = [FAMILIES[n] for n in names] if names else list(FAMILIES.values())
    return sorted((f for f in chosen if task in f.tasks), key=lambda f: not f.baseline)
