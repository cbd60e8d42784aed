"""Model metrics, computed with scikit-learn's implementations.

One report per task, each returning every metric of the spec's catalogue that
applies to it:

- ``classification_report`` (binary): at the decision threshold given;
  ``best_threshold`` picks that threshold from the spec's business costs.
- ``multiclass_report``: labels are the arg-max class; macro averages; ROC-AUC
  and PR-AUC one-vs-rest, macro-averaged (NaN when a class is absent from the
  labels: a run leaves such a metric out); Brier score is scikit-learn's
  multiclass one (squared distance to the one-hot label, summed over classes);
  ECE is the top-label calibration error (confidence of the predicted class
  against whether it was right).
- ``regression_report``: MAE, RMSE, R², MAPE (a fraction, as scikit-learn's).

``task_report`` dispatches on the task. Expected calibration error uses
equal-width bins (15 by default) or, on request, equal-mass bins: the weighted
mean gap between predicted probability and observed frequency over the
non-empty bins. Ranking metrics (precision@k, recall@k, NDCG@k) live in
``evaluate/ranking.py``.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn import metrics as skm


def expected_calibration_error(
    y_true: np.ndarray, proba: np.ndarray, bins: int = 15, strategy: str = "uniform"
) -> float:
    """ECE: the bin-size-weighted mean gap between mean predicted probability and
    observed frequency, over ``bins`` bins.

    ``strategy="uniform"`` (the default) uses equal-width bins on [0, 1], each
    bin right-closed (the first also holds 0); ``"quantile"`` uses equal-mass
    bins, edges at the quantiles of ``proba`` (ties may merge bins).
    """
    if strategy == "uniform":
        inner = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    elif strategy == "quantile":
        inner = np.unique(np.quantile(proba, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    else:
        raise ValueError(f"strategy must be 'uniform' or 'quantile'; got {strategy!r}.")
    which = np.digitize(proba, inner, right=True)
    size = len(inner) + 1
    counts = np.bincount(which, minlength=size)
    predicted = np.bincount(which, weights=proba, minlength=size)
    observed = np.bincount(which, weights=y_true.astype(float), minlength=size)
    used = counts > 0
    gaps = np.abs(predicted[used] - observed[used]) / counts[used]
    return float(np.sum(gaps * counts[used]) / len(proba))


def best_threshold(
    y_true: np.ndarray, proba: np.ndarray, cost_fp: float, cost_fn: float
) -> tuple[float, float]:
    """The threshold minimising ``cost_fp × FP + cost_fn × FN``, and that cost per row."""
    fpr, tpr, thresholds = skm.roc_curve(y_true, proba)
    positives = int(np.sum(y_true == 1))
    negatives = len(y_true) - positives
    cost = cost_fp * fpr * negatives + cost_fn * (1 - tpr) * positives
    best = int(np.argmin(cost))
    return float(min(thresholds[best], 1.0)), float(cost[best] / len(y_true))


def classification_report(
    y_true: np.ndarray, proba: np.ndarray, threshold: float = 0.5
) -> dict[str, float]:
    """Every binary metric, with labels taken at ``proba >= threshold``."""
    y_true = np.asarray(y_true).astype(int)
    predicted = (proba >= threshold).astype(int)
    clipped = np.clip(proba, 1e-15, 1 - 1e-15)
    return {
        "roc_auc": float(skm.roc_auc_score(y_true, proba)),
        "pr_auc": float(skm.average_precision_score(y_true, proba)),
        "log_loss": float(skm.log_loss(y_true, clipped, labels=[0, 1])),
        "brier": float(skm.brier_score_loss(y_true, proba)),
        "ece": expected_calibration_error(y_true, proba),
        "accuracy": float(skm.accuracy_score(y_true, predicted)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y_true, predicted)),
        "precision": float(skm.precision_score(y_true, predicted, zero_division=0)),
        "recall": float(skm.recall_score(y_true, predicted, zero_division=0)),
        "f1": float(skm.f1_score(y_true, predicted, zero_division=0)),
        "threshold": float(threshold),
    }


def multiclass_report(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Every multiclass metric; ``y_true`` holds class codes 0..k-1, ``proba`` is (n, k)."""
    y_true = np.asarray(y_true).astype(int)
    k = proba.shape[1]
    labels = list(range(k))
    predicted = np.argmax(proba, axis=1)
    onehot = np.eye(k)[y_true]
    confidence = proba[np.arange(len(predicted)), predicted]
    return {
        "accuracy": float(skm.accuracy_score(y_true, predicted)),
        "balanced_accuracy": _balanced_accuracy(y_true, predicted),
        "f1_macro": float(
            skm.f1_score(y_true, predicted, labels=labels, average="macro", zero_division=0)
        ),
        "precision_macro": float(
            skm.precision_score(y_true, predicted, labels=labels, average="macro", zero_division=0)
        ),
        "recall_macro": float(
            skm.recall_score(y_true, predicted, labels=labels, average="macro", zero_division=0)
        ),
        "log_loss": float(skm.log_loss(y_true, np.clip(proba, 1e-15, 1), labels=labels)),
        **_one_vs_rest(y_true, onehot, proba, labels),
        "brier": float(skm.brier_score_loss(y_true, proba, labels=labels)),
        "ece": expected_calibration_error((predicted == y_true).astype(int), confidence),
    }


def regression_report(y_true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Every regression metric; MAPE is a fraction (0.1 = 10 %), as scikit-learn reports it."""
    y_true = np.asarray(y_true, dtype=float)
    return {
        "mae": float(skm.mean_absolute_error(y_true, predicted)),
        "rmse": float(skm.root_mean_squared_error(y_true, predicted)),
        "r2": float(skm.r2_score(y_true, predicted)),
        "mape": float(skm.mean_absolute_percentage_error(y_true, predicted)),
    }


def task_report(
    task: str, y_true: np.ndarray, scores: np.ndarray, threshold: float = 0.5
) -> dict[str, float]:
    """The report for ``task``; ``scores`` follow the model output convention of that task."""
    if task == "binary":
        return classification_report(y_true, scores, threshold)
    if task == "multiclass":
        return multiclass_report(y_true, scores)
    if task == "regression":
        return regression_report(y_true, scores)
    raise ValueError(f"No metrics for task {task!r}; known: binary, multiclass, regression.")


def _balanced_accuracy(y_true: np.ndarray, predicted: np.ndarray) -> float:
    with warnings.catch_warnings():  # a class never predicted is fine: its recall is 0
        warnings.simplefilter("ignore", UserWarning)
        return float(skm.balanced_accuracy_score(y_true, predicted))


def _one_vs_rest(
    y_true: np.ndarray, onehot: np.ndarray, proba: np.ndarray, labels: list[int]
) -> dict[str, float]:
    """Macro one-vs-rest ROC-AUC and PR-AUC; NaN when a class is missing from ``y_true``
    (its curves are undefined, and a macro average over the rest would flatter)."""
    if len(np.unique(y_true)) < len(labels):
        return {"roc_auc": float("nan"), "pr_auc": float("nan")}
    return {
        "roc_auc": float(
            skm.roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=labels)
        ),
        "pr_auc": float(skm.average_precision_score(onehot, proba, average="macro")),
    }
