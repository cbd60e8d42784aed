"""The multiclass and regression reports, checked against direct computations."""

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from modelyard.evaluate.metrics import (
    classification_report,
    expected_calibration_error,
    multiclass_report,
    regression_report,
    task_report,
)
from modelyard.spec import METRICS, metrics_for


@pytest.fixture
def three_classes() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 600)
    logits = rng.normal(size=(600, 3)) + 1.5 * np.eye(3)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, proba


def test_multiclass_report_matches_scikit_learn(
    three_classes: tuple[np.ndarray, np.ndarray],
) -> None:
    y, proba = three_classes
    report = multiclass_report(y, proba)
    predicted = proba.argmax(axis=1)
    assert report["accuracy"] == np.mean(predicted == y)
    assert report["f1_macro"] == pytest.approx(skm.f1_score(y, predicted, average="macro"))
    assert report["recall_macro"] == pytest.approx(skm.balanced_accuracy_score(y, predicted))
    assert report["roc_auc"] == pytest.approx(
        np.mean([skm.roc_auc_score(y == k, proba[:, k]) for k in range(3)])
    )
    assert report["log_loss"] == pytest.approx(skm.log_loss(y, proba))
    assert report["pr_auc"] == pytest.approx(
        np.mean([skm.average_precision_score(y == k, proba[:, k]) for k in range(3)])
    )
    onehot = np.eye(3)[y]
    assert report["brier"] == pytest.approx(np.mean(((proba - onehot) ** 2).sum(axis=1)))
    confidence = proba.max(axis=1)
    correct = (predicted == y).astype(int)
    assert report["ece"] == expected_calibration_error(correct, confidence)
    assert 0.5 < report["accuracy"] < 1


def test_multiclass_report_covers_the_catalogue(
    three_classes: tuple[np.ndarray, np.ndarray],
) -> None:
    y, proba = three_classes
    model_metrics = {m for m in metrics_for("multiclass") if METRICS[m].kind == "model"}
    assert set(multiclass_report(y, proba)) == model_metrics


def test_an_absent_class_gives_no_roc_auc_rather_than_a_wrong_one(
    three_classes: tuple[np.ndarray, np.ndarray],
) -> None:
    y, proba = three_classes
    present = y != 2
    report = multiclass_report(y[present], proba[present])
    assert math.isnan(report["roc_auc"]) and math.isnan(report["pr_auc"])
    assert not math.isnan(report["f1_macro"])


def test_regression_report() -> None:
    y = np.array([1.0, 2.0, 4.0, 8.0])
    predicted = np.array([1.5, 2.0, 3.0, 9.0])
    report = regression_report(y, predicted)
    assert report["mae"] == pytest.approx(0.625)
    assert report["rmse"] == pytest.approx(math.sqrt((0.25 + 0 + 1 + 1) / 4))
    assert report["mape"] == pytest.approx((0.5 + 0 + 0.25 + 0.125) / 4)
    assert report["r2"] == pytest.approx(skm.r2_score(y, predicted))
    assert set(report) == {m for m in metrics_for("regression") if METRICS[m].kind == "model"}


def test_task_report_dispatches_on_the_task(three_classes: tuple[np.ndarray, np.ndarray]) -> None:
    y, proba = three_classes
    assert task_report("multiclass", y, proba) == multiclass_report(y, proba)
    binary_y, scores = (y == 0).astype(int), proba[:, 0]
    assert task_report("binary", binary_y, scores, 0.3) == classification_report(
        binary_y, scores, 0.3
    )
    with pytest.raises(ValueError, match="ranking"):
        task_report("ranking", y, proba)
