"""Named slices from the spec and automatic discovery of the worst slices."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.ensemble import HistGradientBoostingClassifier

from modelyard.data.demo import NUMERIC_FEATURES, make_loans
from modelyard.errors import DataError, InvalidInputError
from modelyard.evaluate.bootstrap import metric_fn
from modelyard.evaluate.slices import SliceResult, named_slices, worst_slices
from modelyard.spec import parse_spec

NUMERIC = list(NUMERIC_FEATURES)
FEATURES = [*NUMERIC, "home_ownership", "purpose", "region", "gender"]


@pytest.fixture(scope="module")
def planted() -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Demo loans scored by a model trained on clean rows; in the evaluation rows,
    30 % of the labels of region == 'east' are flipped (a noisier segment)."""
    loans = make_loans(8000, recent_share=0.0, seed=0)
    train, rows = loans.iloc[:4000], loans.iloc[4000:].reset_index(drop=True)
    model = HistGradientBoostingClassifier(max_iter=100, random_state=0)
    model.fit(train[NUMERIC], train["default"])
    scores = model.predict_proba(rows[NUMERIC])[:, 1]
    y = rows["default"].to_numpy().copy()
    rng = np.random.default_rng(0)
    flip = (rows["region"] == "east").to_numpy() & (rng.random(len(rows)) < 0.3)
    y[flip] = 1 - y[flip]
    return rows, y, scores, (scores >= 0.2).astype(int)


@pytest.mark.parametrize("metric", ["log_loss", "brier"])
def test_the_planted_weak_segment_ranks_first(
    planted: tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray], metric: str
) -> None:
    rows, y, scores, y_pred = planted
    found = worst_slices(rows, FEATURES, y, scores, y_pred, metric)
    assert found[0].condition == "region == 'east'"
    east = (rows["region"] == "east").to_numpy()
    assert found[0].size == east.sum()
    assert found[0].value == pytest.approx(metric_fn(metric, "binary")(y[east], scores[east]))
    assert found[0].clearly_worse
    # its sub-segments are not listed again (the segment is reported once)
    assert not any("region == 'east' and" in r.condition for r in found)
    assert not any("and region == 'east'" in r.condition for r in found)


def test_every_discovered_condition_selects_the_rows_it_reports(
    planted: tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    rows, y, scores, y_pred = planted
    features = ["income", "purpose", "term_months"]  # income has missing values
    found = worst_slices(rows, features, y, scores, y_pred, "roc_auc", min_size=50, top=100)
    assert len(found) > 5
    for r in found:
        selected = rows.query(r.condition).index.to_numpy()
        assert selected.size == r.size >= 50
        assert r.value == pytest.approx(skm.roc_auc_score(y[selected], scores[selected]))
        assert r.ci_low is not None and r.ci_high is not None
        assert r.ci_low <= r.value <= r.ci_high
        assert r.gap == pytest.approx(r.value - r.overall)
        assert r.value < r.overall  # only slices worse than overall are listed
    bounds = [r.overall - r.rank_bound for r in found if r.rank_bound is not None]
    assert bounds == sorted(bounds, reverse=True)


def test_a_large_clearly_bad_slice_beats_a_small_noisy_one() -> None:
    rng = np.random.default_rng(1)
    # (rows, rows the model gets right): big is 80 % right, tiny 70 %, the rest 95 %
    parts = {"big": (2000, 1600), "tiny": (40, 28), "rest": (4000, 3800)}
    segment = np.concatenate([[name] * rows for name, (rows, _) in parts.items()])
    correct = np.concatenate(
        [rng.permutation(np.arange(rows) < right) for rows, right in parts.values()]
    )
    y = rng.integers(0, 2, segment.size)
    y_pred = np.where(correct, y, 1 - y)
    frame = pd.DataFrame({"segment": segment})
    found = worst_slices(
        frame, ["segment"], y, y.astype(float), y_pred, "accuracy", min_size=30, pairs=False
    )
    assert [(r.name, r.value) for r in found] == [("segment = big", 0.8), ("segment = tiny", 0.7)]
    assert found[0].clearly_worse  # the tiny one looks worse, but is far less certain


def test_slices_smaller_than_min_size_are_ignored() -> None:
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"segment": ["a"] * 150 + ["b"] * 99 + ["c"] * 300})
    y = rng.integers(0, 2, len(frame))
    y_pred = np.where(frame["segment"] == "b", 1 - y, y)  # b is all wrong, but small
    y_pred[:40] = 1 - y[:40]
    found = worst_slices(frame, ["segment"], y, y.astype(float), y_pred, "accuracy", min_size=100)
    assert [r.name for r in found] == ["segment = a"]


def test_numeric_features_are_cut_into_quantile_bins_and_missing_is_a_value() -> None:
    rng = np.random.default_rng(3)
    n = 4000
    x = rng.normal(0, 1, n)
    x[:400] = np.nan
    y = rng.integers(0, 2, n)
    wrong = np.isnan(x) | (x > 1.5)
    y_pred = np.where(wrong & (rng.random(n) < 0.5), 1 - y, y)
    frame = pd.DataFrame({"x": x})
    found = worst_slices(
        frame, ["x"], y, y.astype(float), y_pred, "accuracy", bins=4, min_size=50, top=10
    )
    assert found[0].condition == "x.isna()" and found[0].name == "x missing"
    assert found[0].size == 400
    quartiles = [r for r in found if r.condition != "x.isna()"]
    assert all(r.size == pytest.approx(900, abs=2) for r in quartiles)


def test_direction_can_be_overridden_and_lower_is_better_metrics_rank_high_values() -> None:
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"segment": ["a"] * 500 + ["b"] * 500})
    y = rng.normal(0, 1, 1000)
    predicted = y + rng.normal(0, np.where(frame["segment"] == "b", 2.0, 0.5))
    found = worst_slices(frame, ["segment"], y, predicted, None, "mae", min_size=100)
    assert [r.name for r in found] == ["segment = b"]
    assert found[0].direction == "min" and found[0].gap is not None and found[0].gap > 0
    flipped = worst_slices(
        frame, ["segment"], y, predicted, None, "mae", min_size=100, direction="max"
    )
    assert [r.name for r in flipped] == ["segment = a"]


SPEC = """\
name: loans
task: binary
target: default
slices:
  - name: east
    where: "region == 'east'"
  - name: young
    where: "age < 25 and region != 'north'"
    min_size: 100000
  - name: big-loans
    where: "loan_amount >= 20000"
    goal: {name: recall, threshold: 0.99}
"""


def test_named_slices_follow_the_spec(
    planted: tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    rows, y, scores, y_pred = planted
    results = named_slices(rows, parse_spec(SPEC), y, scores, y_pred, "roc_auc", n_boot=100)
    east, young, big = results
    mask = (rows["region"] == "east").to_numpy()
    assert (east.name, east.condition, east.size) == ("east", "region == 'east'", mask.sum())
    assert east.value == pytest.approx(skm.roc_auc_score(y[mask], scores[mask]))
    assert east.overall == pytest.approx(skm.roc_auc_score(y, scores))
    assert east.metric == "roc_auc" and east.passed is None
    assert young.value is None and young.note is not None and "too small" in young.note
    big_rows = (rows["loan_amount"] >= 20000).to_numpy()
    assert big.metric == "recall" and big.goal == "recall ≥ 0.99"
    assert big.value == pytest.approx(skm.recall_score(y[big_rows], y_pred[big_rows]))
    assert big.overall == pytest.approx(skm.recall_score(y, y_pred))
    assert big.passed is False
    json.dumps([r.to_dict() for r in results], allow_nan=False)


def test_a_bad_where_names_the_slice_and_the_expression() -> None:
    spec = parse_spec(
        'name: p\ntask: binary\ntarget: t\nslices:\n  - name: seniors\n    where: "agee >= 65"\n'
    )
    frame = pd.DataFrame({"age": [70, 30]})
    with pytest.raises(DataError, match=r"Slice 'seniors'.*'agee >= 65'.*columns are: age"):
        named_slices(frame, spec, [0, 1], [0.2, 0.8], [0, 1], "roc_auc")


def test_inputs_of_different_lengths_or_bad_settings_are_refused() -> None:
    frame = pd.DataFrame({"a": [1, 2, 3]})
    with pytest.raises(InvalidInputError, match="frame: 3, y: 2"):
        worst_slices(frame, ["a"], [0, 1], [0.1, 0.2], None, "roc_auc")
    with pytest.raises(InvalidInputError, match="bins >= 2"):
        worst_slices(frame, ["a"], [0, 1, 0], [0.1, 0.2, 0.3], None, "roc_auc", bins=1)
    with pytest.raises(DataError, match="Feature 'b' is not a column"):
        worst_slices(frame, ["b"], [0, 1, 0], [0.1, 0.2, 0.3], None, "roc_auc")


def test_result_serialises_without_nan() -> None:
    result = SliceResult("s", "a == 1", 3, None, None, None, 0.8, None, note="too small")
    payload = result.to_dict()
    assert payload["clearly_worse"] is False
    assert json.loads(json.dumps(payload, allow_nan=False))["value"] is None
