import itertools

import numpy as np
import pytest
from sklearn import metrics as skm

from modelyard.evaluate.metrics import (
    best_threshold,
    classification_report,
    expected_calibration_error,
)


@pytest.fixture
def scored() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    proba = rng.beta(2, 5, 4_000)
    y = (rng.random(4_000) < np.clip(proba * 1.3, 0, 1)).astype(int)
    return y, proba


def test_ece_matches_a_direct_per_bin_computation(scored: tuple[np.ndarray, np.ndarray]) -> None:
    y, proba = scored
    edges = np.linspace(0, 1, 16)
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        inside = (proba > lo) & (proba <= hi) if lo > 0 else (proba >= lo) & (proba <= hi)
        if inside.any():
            total += inside.sum() * abs(proba[inside].mean() - y[inside].mean())
    assert expected_calibration_error(y, proba) == pytest.approx(total / len(y), rel=1e-12)


def test_ece_is_zero_for_perfect_calibration_within_bins() -> None:
    proba = np.repeat([0.1, 0.5, 0.9], 10)
    y = np.array([1] + [0] * 9 + [1] * 5 + [0] * 5 + [1] * 9 + [0])
    assert expected_calibration_error(y, proba) == pytest.approx(0.0, abs=1e-12)


def test_best_threshold_minimises_cost_by_brute_force(
    scored: tuple[np.ndarray, np.ndarray],
) -> None:
    y, proba = scored
    threshold, cost = best_threshold(y, proba, cost_fp=1.0, cost_fn=6.0)

    def cost_at(t: float) -> float:
        predicted = proba >= t
        return float((predicted & (y == 0)).sum() * 1.0 + (~predicted & (y == 1)).sum() * 6.0)

    brute = min(cost_at(t) for t in np.unique(proba))
    assert cost_at(threshold) == pytest.approx(brute)
    assert cost == pytest.approx(brute / len(y))


def test_report_agrees_with_scikit_learn(scored: tuple[np.ndarray, np.ndarray]) -> None:
    y, proba = scored
    report = classification_report(y, proba, threshold=0.3)
    predicted = proba >= 0.3
    assert report["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba))
    assert report["recall"] == pytest.approx(skm.recall_score(y, predicted))
    assert report["precision"] == pytest.approx(skm.precision_score(y, predicted))
    assert report["brier"] == pytest.approx(skm.brier_score_loss(y, proba))
    assert report["threshold"] == 0.3


def test_equal_mass_ece_by_hand() -> None:
    # Four rows, two equal-mass bins: {0.1, 0.2} (observed 0/2) and {0.7, 0.9} (observed 2/2).
    proba = np.array([0.1, 0.2, 0.7, 0.9])
    y = np.array([0, 0, 1, 1])
    gaps = 2 * abs(0.15 - 0.0) + 2 * abs(0.8 - 1.0)
    assert expected_calibration_error(y, proba, bins=2, strategy="quantile") == pytest.approx(
        gaps / 4
    )
    with pytest.raises(ValueError, match="strategy"):
        expected_calibration_error(y, proba, strategy="mass")
