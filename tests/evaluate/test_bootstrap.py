"""The vectorised bootstrap: each metric on resample count matrices equals scikit-learn
on the explicitly resampled rows; intervals cover known values; errors are clear."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm
from sklearn import metrics as skm

from modelyard.errors import InvalidInputError
from modelyard.evaluate import bootstrap as bs
from modelyard.evaluate.bootstrap import (
    Estimate,
    bootstrap_metric,
    metric_fn,
    paired_bootstrap,
    percentile_interval,
    replicates,
    resample_weights,
)
from modelyard.evaluate.metrics import expected_calibration_error, multiclass_report

Ref = Callable[[np.ndarray, np.ndarray, np.ndarray], float]

BINARY: dict[str, Ref] = {
    "roc_auc": lambda y, s, p: skm.roc_auc_score(y, s),
    "pr_auc": lambda y, s, p: skm.average_precision_score(y, s),
    "log_loss": lambda y, s, p: skm.log_loss(y, np.clip(s, 1e-15, 1 - 1e-15), labels=[0, 1]),
    "brier": lambda y, s, p: skm.brier_score_loss(y, s),
    "ece": lambda y, s, p: expected_calibration_error(y, s),
    "accuracy": lambda y, s, p: skm.accuracy_score(y, p),
    "balanced_accuracy": lambda y, s, p: skm.balanced_accuracy_score(y, p),
    "precision": lambda y, s, p: skm.precision_score(y, p, zero_division=0),
    "recall": lambda y, s, p: skm.recall_score(y, p, zero_division=0),
    "f1": lambda y, s, p: skm.f1_score(y, p, zero_division=0),
}
K = 4
LABELS = list(range(K))
MULTICLASS: dict[str, Ref] = {
    "roc_auc": lambda y, s, p: skm.roc_auc_score(y, s, multi_class="ovr", labels=LABELS),
    "pr_auc": lambda y, s, p: skm.average_precision_score(np.eye(K)[y], s, average="macro"),
    "log_loss": lambda y, s, p: skm.log_loss(y, s, labels=LABELS),
    "brier": lambda y, s, p: skm.brier_score_loss(y, s, labels=LABELS),
    "ece": lambda y, s, p: multiclass_report(y, s)["ece"],
    "accuracy": lambda y, s, p: skm.accuracy_score(y, p),
    "balanced_accuracy": lambda y, s, p: skm.balanced_accuracy_score(y, p),
    "precision_macro": lambda y, s, p: skm.precision_score(
        y, p, labels=LABELS, average="macro", zero_division=0
    ),
    "recall_macro": lambda y, s, p: skm.recall_score(
        y, p, labels=LABELS, average="macro", zero_division=0
    ),
    "f1_macro": lambda y, s, p: skm.f1_score(y, p, labels=LABELS, average="macro", zero_division=0),
}
REGRESSION: dict[str, Ref] = {
    "mae": lambda y, s, p: skm.mean_absolute_error(y, s),
    "rmse": lambda y, s, p: skm.root_mean_squared_error(y, s),
    "r2": lambda y, s, p: skm.r2_score(y, s),
    "mape": lambda y, s, p: skm.mean_absolute_percentage_error(y, s),
}


def _binary_rows(n: int = 400, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    scores = np.round(np.clip(rng.normal(0.35 + 0.25 * y, 0.2), 0, 1), 2)  # rounded: many ties
    return y, scores, (scores >= 0.45).astype(int)


def _multiclass_rows(n: int = 400, seed: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, n)
    scores = rng.dirichlet(np.ones(K), n)
    scores[np.arange(n), y] += 0.4
    scores = np.round(scores / scores.sum(axis=1, keepdims=True), 3)
    scores /= scores.sum(axis=1, keepdims=True)
    return y, scores, scores.argmax(axis=1)


def _regression_rows(n: int = 400, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.normal(50, 10, n)
    predicted = y + rng.normal(0, 4, n)
    return y, predicted, predicted


def _explicit(
    ref: Ref, counts: np.ndarray, y: np.ndarray, s: np.ndarray, p: np.ndarray
) -> list[float]:
    """scikit-learn on the resampled rows themselves, one resample at a time."""
    out = []
    for row in counts:
        rows = np.repeat(np.arange(y.size), row.astype(int))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out.append(float(ref(y[rows], s[rows], p[rows])))
    return out


CASES = [
    *(("binary", name, ref, _binary_rows) for name, ref in BINARY.items()),
    *(("multiclass", name, ref, _multiclass_rows) for name, ref in MULTICLASS.items()),
    *(("regression", name, ref, _regression_rows) for name, ref in REGRESSION.items()),
]


@pytest.mark.parametrize(
    ("task", "name", "ref", "rows"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES]
)
def test_metric_on_resample_counts_equals_scikit_learn_on_resampled_rows(
    task: str, name: str, ref: Ref, rows: Callable[[], tuple[np.ndarray, ...]]
) -> None:
    y, scores, y_pred = rows()
    prepared = metric_fn(name, task).prepare(y, scores, y_pred)
    counts = next(resample_weights(y.size, 4, seed=5))
    assert prepared.on_weights(counts) == pytest.approx(
        _explicit(ref, counts, y, scores, y_pred), abs=1e-9
    )
    assert prepared.value() == pytest.approx(ref(y, scores, y_pred), abs=1e-9)
    assert metric_fn(name, task)(y, scores, y_pred) == pytest.approx(prepared.value(), abs=1e-12)


@pytest.mark.parametrize("name", ["accuracy", "balanced_accuracy", "precision", "recall", "f1"])
def test_contingency_metrics_read_the_same_values_from_cell_counts(name: str) -> None:
    # The sufficient-statistics path feeds cell counts to the same function.
    y, scores, y_pred = _binary_rows()
    prepared = metric_fn(name, "binary").prepare(y, scores, y_pred)
    assert isinstance(prepared, bs._Cells)
    counts = next(resample_weights(y.size, 3, seed=9))
    cells = np.stack([np.bincount(prepared.codes, weights=w, minlength=4) for w in counts])
    assert prepared.from_counts(cells) == pytest.approx(prepared.on_weights(counts), abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    labels=st.lists(st.integers(0, 1), min_size=2, max_size=40),
    levels=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_rank_metrics_match_scikit_learn_with_ties_and_missing_classes(
    labels: list[int], levels: int, seed: int
) -> None:
    y = np.array(labels)
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, levels, y.size) / levels  # heavy ties
    counts = next(resample_weights(y.size, 3, seed=seed))
    for name in ("roc_auc", "pr_auc"):
        got = metric_fn(name, "binary").prepare(y, scores).on_weights(counts)
        for value, row in zip(got, counts, strict=True):
            rows = np.repeat(np.arange(y.size), row.astype(int))
            if len(set(y[rows])) < 2:  # one class only: undefined, NaN by convention
                assert math.isnan(value)
            else:
                assert value == pytest.approx(BINARY[name](y[rows], scores[rows], y), abs=1e-9)


def test_resample_weights_are_bootstrap_counts_in_bounded_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bs, "CHUNK_CELLS", 1000)
    chunks = list(resample_weights(300, 10, seed=0))
    assert [c.shape for c in chunks] == [(3, 300)] * 3 + [(1, 300)]
    counts = np.concatenate(chunks)
    assert np.all(counts.sum(axis=1) == 300)
    assert np.all(counts >= 0) and np.all(counts == np.round(counts))
    again = np.concatenate(list(resample_weights(300, 10, seed=0)))
    assert np.array_equal(counts, again)  # reproducible from the seed
    # each row is drawn once per resample on average, with the multinomial variance
    many = np.concatenate(list(resample_weights(50, 4000, seed=1)))
    assert many.mean() == pytest.approx(1.0)
    assert many.var() == pytest.approx(1 - 1 / 50, abs=0.03)


def test_paired_bootstrap_is_the_percentile_interval_of_differences_on_shared_rows() -> None:
    y, scores, y_pred = _binary_rows(n=200)
    other = np.clip(scores + np.random.default_rng(4).normal(0, 0.15, y.size), 0, 1)
    result = paired_bootstrap("roc_auc", y, scores, y_pred, other, None, n_boot=50, seed=3)
    counts = np.concatenate(list(resample_weights(y.size, 50, seed=3)))
    ref = BINARY["roc_auc"]
    diffs = np.subtract(_explicit(ref, counts, y, other, y), _explicit(ref, counts, y, scores, y))
    low, high = np.quantile(diffs, [0.025, 0.975])
    assert (result.low, result.high) == pytest.approx((low, high), abs=1e-9)
    assert result.diff == pytest.approx(ref(y, other, y) - ref(y, scores, y), abs=1e-12)


def test_a_model_against_itself_differs_by_exactly_zero_in_every_resample() -> None:
    y, scores, y_pred = _binary_rows()
    for name in ("roc_auc", "recall", "log_loss"):
        same = paired_bootstrap(name, y, scores, y_pred, scores, y_pred, n_boot=200)
        assert (same.diff, same.low, same.high) == (0.0, 0.0, 0.0)


def _coverage(
    draw: Callable[[np.random.Generator], tuple[Any, ...]], name: str, truth: float
) -> float:
    rng = np.random.default_rng(2024)
    hits = 0
    for trial in range(100):
        estimate = bootstrap_metric(name, *draw(rng), n_boot=200, seed=trial)
        hits += estimate.low <= truth <= estimate.high
    return hits / 100


def test_interval_covers_a_known_auc() -> None:
    def draw(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        y = (rng.random(300) < 0.4).astype(int)
        return y, rng.normal(y, 1.0)  # binormal scores: AUC = Φ(1/√2)

    assert 0.88 <= _coverage(draw, "roc_auc", float(norm.cdf(1 / np.sqrt(2)))) <= 1.0


def test_interval_covers_a_known_accuracy() -> None:
    def draw(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        y = rng.integers(0, 2, 250)
        right = rng.random(250) < 0.8
        return y, y.astype(float), np.where(right, y, 1 - y)

    assert 0.88 <= _coverage(draw, "accuracy", 0.8) <= 1.0


def test_interval_covers_a_known_mean_absolute_error() -> None:
    def draw(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        y = rng.normal(0, 5, 250)
        return y, y + rng.normal(0, 1, 250)

    assert 0.88 <= _coverage(draw, "mae", float(np.sqrt(2 / np.pi))) <= 1.0


def test_point_value_lies_inside_its_interval_and_estimate_serialises() -> None:
    y, scores, y_pred = _binary_rows()
    estimate = bootstrap_metric("f1", y, scores, y_pred, n_boot=300)
    assert estimate.low <= estimate.value <= estimate.high
    assert isinstance(estimate, tuple) and len(estimate) == 3
    undefined = Estimate(float("nan"), float("nan"), 0.5)
    assert json.dumps(undefined.to_dict(), allow_nan=False) == (
        '{"value": null, "low": null, "high": 0.5}'
    )


def test_undefined_resamples_are_left_out_of_the_interval() -> None:
    # 3 positives in 60 rows: some resamples have none, where ROC-AUC is undefined.
    y = np.zeros(60, dtype=int)
    y[:3] = 1
    scores = np.linspace(1, 0, 60)
    values = replicates([metric_fn("roc_auc", "binary").prepare(y, scores)], 500, seed=0)
    assert np.isnan(values).any() and np.isfinite(values).any()
    low, high = percentile_interval(values[:, 0], 0.05)
    assert low == pytest.approx(1.0) and high == pytest.approx(1.0)
    assert all(math.isnan(v) for v in percentile_interval([np.nan, np.nan], 0.05))


def test_task_is_inferred_from_the_metric_and_the_scores() -> None:
    y, scores, y_pred = _multiclass_rows()
    assert bootstrap_metric("accuracy", y, scores, y_pred, n_boot=20).value == pytest.approx(
        skm.accuracy_score(y, y_pred)
    )
    ry, predicted, _ = _regression_rows()
    assert bootstrap_metric("rmse", ry, predicted, n_boot=20).value == pytest.approx(
        skm.root_mean_squared_error(ry, predicted)
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: metric_fn("ndcg_at_k", "ranking"), "ranking metrics"),
        (lambda: metric_fn("rmse", "binary"), "no bootstrap implementation"),
        (lambda: bootstrap_metric("nope", [0, 1], [0.1, 0.9]), "Unknown metric 'nope'"),
        (lambda: bootstrap_metric("recall", [0, 1], [0.1, 0.9]), "needs y_pred"),
        (lambda: bootstrap_metric("roc_auc", [0, 2], [0.1, 0.9]), "class codes 0..1"),
        (lambda: bootstrap_metric("roc_auc", [0, 1, 1], [0.1, 0.9]), "y has 3 rows"),
        (lambda: bootstrap_metric("roc_auc", [0, 1], [0.1, 0.9], alpha=5), "alpha must lie"),
        (lambda: bootstrap_metric("roc_auc", [0, 1], [0.1, 0.9], n_boot=0), "n_boot >= 1"),
        (lambda: bootstrap_metric("roc_auc", ["no", "yes"], [0.1, 0.9]), "encode string"),
        (lambda: bootstrap_metric("roc_auc", [0, 1], [0.1, np.nan]), "must be finite"),
        (lambda: bootstrap_metric("mae", [], []), "no rows"),
        (lambda: bootstrap_metric("accuracy", [0, 1], [[0.2, 0.8]] * 2, [0, 3]), "0..1"),
    ],
)
def test_bad_calls_say_what_to_do(call: Callable[[], object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        call()


def test_cell_count_draws_give_the_same_distribution_as_resampling_rows() -> None:
    # Recall alone is bootstrapped from Multinomial(n, cell shares); next to ROC-AUC it
    # is computed from row counts. Both are the ordinary bootstrap: same distribution.
    y, scores, y_pred = _binary_rows(n=500)
    recall = metric_fn("recall", "binary").prepare(y, scores, y_pred)
    auc = metric_fn("roc_auc", "binary").prepare(y, scores, y_pred)
    from_cells = replicates([recall], 4000, seed=1)[:, 0]
    from_rows = replicates([recall, auc], 4000, seed=2)[:, 0]
    assert from_cells.mean() == pytest.approx(from_rows.mean(), abs=0.003)
    assert from_cells.std() == pytest.approx(from_rows.std(), rel=0.06)
    assert percentile_interval(from_cells, 0.1) == pytest.approx(
        percentile_interval(from_rows, 0.1), abs=0.01
    )
