"""Model metrics, computed with scikit-learn's implementations.

``classification_report`` returns every binary metric the spec can name, at the
decision threshold given; ``best_threshold`` picks that threshold from the
spec's business costs. Expected calibration error uses equal-width bins (15 by
default): the weighted mean gap between predicted probability and observed
frequency over the non-empty bins.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, bins: int = 15) -> float:
    """ECE over ``bins`` equal-width probability bins, weighted by bin size."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(proba, edges[1:-1], right=True), 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    predicted = np.bincount(which, weights=proba, minlength=bins)
    observed = np.bincount(which, weights=y_true.astype(float), minlength=bins)
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
