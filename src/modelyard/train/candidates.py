"""Candidate model families, each fitted on the encoded matrix with a fixed seed.

Baselines come first: a candidate that cannot beat logistic regression is not
worth its serving cost. Classes are not re-weighted by default: the decision
threshold chosen from the spec's business costs handles imbalance without
distorting the probabilities (re-weighting would break calibration).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelyard.data.encoding import FeatureEncoder

Fit = Callable[
    [np.ndarray, np.ndarray, np.ndarray, np.ndarray, FeatureEncoder, dict[str, Any]], Any
]


@dataclass(frozen=True)
class Candidate:
    """A model family with its parameters; ``fit`` returns the fitted model."""

    name: str
    flavor: str
    fit: Fit
    params: dict[str, Any] = field(default_factory=dict)
    baseline: bool = False


def fit_logistic(
    X: np.ndarray,
    y: np.ndarray,
    X_valid: np.ndarray,
    y_valid: np.ndarray,
    encoder: FeatureEncoder,
    params: dict[str, Any],
) -> Any:
    """Median-imputed, scaled numbers and one-hot categories into a logistic regression."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    categorical = encoder.categorical_indices
    numeric = [i for i in range(len(encoder.fields)) if i not in categorical]
    prep = ColumnTransformer(
        [
            ("numbers", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            (
                "categories",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value=-1),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                categorical,
            ),
        ]
    )
    model = LogisticRegression(
        C=params["C"],
        class_weight=params["class_weight"],
        max_iter=params["max_iter"],
        random_state=params["seed"],
    )
    return Pipeline([("prep", prep), ("model", model)]).fit(X, y)


def fit_lightgbm(
    X: np.ndarray,
    y: np.ndarray,
    X_valid: np.ndarray,
    y_valid: np.ndarray,
    encoder: FeatureEncoder,
    params: dict[str, Any],
) -> Any:
    """Gradient-boosted trees with native categories and early stopping on validation."""
    import lightgbm as lgb

    booster_params = {
        k: v for k, v in params.items() if k not in ("num_boost_round", "early_stopping_rounds")
    }
    train = lgb.Dataset(X, y, categorical_feature=encoder.categorical_indices, free_raw_data=False)
    valid = lgb.Dataset(X_valid, y_valid, reference=train)
    return lgb.train(
        booster_params,
        train,
        num_boost_round=params["num_boost_round"],
        valid_sets=[valid],
        callbacks=[lgb.early_stopping(params["early_stopping_rounds"], verbose=False)],
    )


def default_candidates(seed: int = 42) -> list[Candidate]:
    """The walking skeleton's two candidates: a logistic baseline and LightGBM."""
    return [
        Candidate(
            "logistic",
            "sklearn",
            fit_logistic,
            baseline=True,
            params={"C": 1.0, "class_weight": None, "max_iter": 1000, "seed": seed},
        ),
        Candidate(
            "lightgbm",
            "lightgbm",
            fit_lightgbm,
            params={
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
            },
        ),
    ]
