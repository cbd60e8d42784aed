"""Likely mislabelled rows, by confident learning (Northcutt, Jiang & Chuang, JAIR 2021).

Written from the paper's description; no code from other projects.

1. Out-of-fold predicted probabilities ``p[x, j]``: each row is scored by a
   model that did not see it (stratified K-fold ``cross_val_predict``).
2. Per-class thresholds ``t_j``: the mean of ``p[x, j]`` over rows labelled j
   (the model's average self-confidence on class j).
3. The confident joint ``C[i, j]``: a row labelled i counts towards j, the
   class with the highest probability among those whose probability reaches
   their threshold; a row where no class reaches its threshold is not counted.
4. Rows labelled i whose confident class is some j ≠ i (off the diagonal of
   ``C``) are the label issues, ranked by self-confidence — the probability
   of the given label — lowest (most suspicious) first.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from modelyard.errors import DataError, InvalidInputError

SMALL_DATA_ROWS = 500
"""Below this many rows the default model is a (scaled) logistic regression."""

ISSUE_COLUMNS = ["row", "given", "suggested", "self_confidence", "margin"]


def find_label_issues(
    X: pd.DataFrame | np.ndarray,
    y: Any,
    *,
    model: Any = None,
    folds: int = 5,
    seed: int = 0,
) -> pd.DataFrame:
    """Rows whose label the data contradicts, worst first.

    ``X`` must be numeric (encode categories first, e.g. with
    ``FeatureEncoder``); ``model`` is any scikit-learn classifier with
    ``predict_proba`` (default: ``HistGradientBoostingClassifier``, or a
    logistic regression below ``SMALL_DATA_ROWS`` rows). Returns the columns
    ``row`` (0-based position), ``given``, ``suggested``, ``self_confidence``
    (probability of the given label) and ``margin`` (that probability minus the
    highest other one).
    """
    matrix = _features(X)
    labels = np.asarray(y, dtype=object)
    if labels.ndim != 1 or len(labels) != len(matrix):
        raise DataError(
            f"X has {len(matrix)} rows but y has shape {labels.shape}; give one label per row."
        )
    classes, codes = _encode_labels(labels, folds)
    probs = out_of_fold_probabilities(matrix, codes, model=model, folds=folds, seed=seed)
    return label_issues_from_probabilities(probs, codes, classes=classes)


def out_of_fold_probabilities(
    X: np.ndarray, codes: np.ndarray, *, model: Any = None, folds: int = 5, seed: int = 0
) -> np.ndarray:
    """``predict_proba`` for every row from a model fitted on the other folds."""
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    estimator = clone(model) if model is not None else default_model(len(X), seed)
    if not hasattr(estimator, "predict_proba"):
        raise InvalidInputError(
            f"Model {type(estimator).__name__} has no predict_proba; confident learning "
            "needs predicted probabilities. Pass a probabilistic classifier."
        )
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    probs: np.ndarray = cross_val_predict(estimator, X, codes, cv=cv, method="predict_proba")
    return probs


def default_model(rows: int, seed: int = 0) -> Any:
    """Gradient-boosted trees, or a scaled logistic regression for small data."""
    if rows < SMALL_DATA_ROWS:
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=1_000))
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(random_state=seed)


def confident_joint(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The confident joint ``C`` (given × confident class) and each row's confident class.

    ``labels`` are class indices into the columns of ``probs``; a row's
    confident class is -1 when no class reaches its threshold.
    """
    probs, labels = _check_probabilities(probs, labels)
    k = probs.shape[1]
    thresholds = np.array([probs[labels == j, j].mean() for j in range(k)])
    above = probs >= thresholds
    masked = np.where(above, probs, -np.inf)
    confident = np.where(above.any(axis=1), masked.argmax(axis=1), -1)
    joint = np.zeros((k, k), dtype=np.int64)
    counted = confident >= 0
    np.add.at(joint, (labels[counted], confident[counted]), 1)
    return joint, confident


def label_issues_from_probabilities(
    probs: np.ndarray, labels: np.ndarray, *, classes: Any = None
) -> pd.DataFrame:
    """Confident-learning issues from out-of-fold ``probs`` and given class indices ``labels``.

    ``classes`` names the columns of ``probs`` (default: their indices).
    """
    probs, labels = _check_probabilities(probs, labels)
    names = np.asarray(classes if classes is not None else range(probs.shape[1]), dtype=object)
    _, confident = confident_joint(probs, labels)
    rows = np.nonzero((confident >= 0) & (confident != labels))[0]
    own = probs[rows, labels[rows]]
    others = probs[rows].copy()
    others[np.arange(len(rows)), labels[rows]] = -np.inf
    frame = pd.DataFrame(
        {
            "row": rows,
            "given": names[labels[rows]],
            "suggested": names[confident[rows]],
            "self_confidence": own,
            "margin": own - others.max(axis=1, initial=-np.inf),
        },
        columns=ISSUE_COLUMNS,
    )
    order = np.lexsort((frame["row"], frame["margin"], frame["self_confidence"]))
    return frame.iloc[order].reset_index(drop=True)


def _features(X: pd.DataFrame | np.ndarray) -> np.ndarray:
    if isinstance(X, pd.DataFrame):
        text = [str(c) for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
        if text:
            raise DataError(
                f"Columns {text} are not numeric. Encode them first, e.g. "
                "FeatureEncoder.fit(frame, features).transform(frame)."
            )
        values: np.ndarray = X.to_numpy(dtype=np.float64, na_value=np.nan)
        return values
    matrix = np.asarray(X, dtype=np.float64)
    if matrix.ndim != 2:
        raise DataError(f"X must be a 2-D table of features; got shape {matrix.shape}.")
    return matrix


def _encode_labels(labels: np.ndarray, folds: int) -> tuple[np.ndarray, np.ndarray]:
    missing = pd.isna(labels)
    if missing.any():
        raise DataError(
            f"{int(missing.sum())} row(s) have no label (e.g. row {int(np.argmax(missing))}); "
            "drop them before looking for label issues."
        )
    codes, classes = pd.factorize(labels, sort=True)
    if len(classes) < 2:
        raise DataError("Label issues need at least two classes; every row has the same label.")
    counts = np.bincount(codes)
    if folds < 2 or counts.min() < folds:
        rare = classes[int(counts.argmin())]
        raise DataError(
            f"Cross-validation with {folds} folds needs at least {folds} rows of every class "
            f"(and folds ≥ 2); class {rare!r} has {int(counts.min())}. Use fewer folds."
        )
    return np.asarray(classes, dtype=object), np.asarray(codes, dtype=np.int64)


def _check_probabilities(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels)
    if p.ndim != 2 or y.shape != (p.shape[0],):
        raise DataError(
            f"Expected probabilities of shape (rows, classes) and one label per row; "
            f"got {p.shape} and {y.shape}."
        )
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= p.shape[1]:
        raise DataError(f"Labels must be class indices in [0, {p.shape[1] - 1}].")
    missing = [j for j in range(p.shape[1]) if not (y == j).any()]
    if missing:
        raise DataError(
            f"Class index(es) {missing} have no labelled row, so their thresholds are undefined."
        )
    return p, y.astype(np.int64)
