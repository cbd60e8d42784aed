"""Fairness metrics agree with fairlearn (the oracle), edge cases included."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    count,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    equalized_odds_ratio,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from modelyard.errors import DataError, InvalidInputError
from modelyard.evaluate.fairness import FairnessResult, fairness_report


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-9


rows = st.integers(2, 60).flatmap(
    lambda n: st.tuples(
        st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=n, max_size=n),
        st.lists(st.integers(0, 1), min_size=n, max_size=n),
        st.lists(st.integers(0, 1), min_size=n, max_size=n),
    )
)


@settings(max_examples=50, deadline=None)
@given(rows)
def test_disparities_and_group_metrics_match_fairlearn(
    data: tuple[list[str], list[int], list[int]],
) -> None:
    groups, y_list, pred_list = data
    group, y, y_pred = np.array(groups), np.array(y_list), np.array(pred_list)
    result = fairness_report(pd.DataFrame({"group": group}), ["group"], y, y_pred)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = {
            "demographic_parity_difference": demographic_parity_difference(
                y, y_pred, sensitive_features=group
            ),
            "demographic_parity_ratio": demographic_parity_ratio(
                y, y_pred, sensitive_features=group
            ),
            "equalized_odds_difference": equalized_odds_difference(
                y, y_pred, sensitive_features=group
            ),
            "equalized_odds_ratio": equalized_odds_ratio(y, y_pred, sensitive_features=group),
        }
        frame = MetricFrame(
            metrics={
                "selection_rate": selection_rate,
                "tpr": true_positive_rate,
                "fpr": false_positive_rate,
                "accuracy": skm.accuracy_score,
                "size": count,
            },
            y_true=y,
            y_pred=y_pred,
            sensitive_features=group,
        ).by_group
    for name, value in expected.items():
        assert _same(getattr(result, name), float(value)), name
    assert [g.group for g in result.groups] == list(frame.index)
    for g in result.groups:
        for column in ("selection_rate", "tpr", "fpr", "accuracy", "size"):
            assert _same(float(getattr(g, column)), float(frame.loc[g.group, column])), column


def test_groups_without_positives_follow_fairlearn_and_are_flagged() -> None:
    group = np.array(["a"] * 4 + ["b"] * 4)
    y = np.array([0, 0, 0, 0, 1, 1, 0, 0])  # group a has no positive label
    y_pred = np.array([1, 0, 0, 0, 1, 0, 0, 1])
    result = fairness_report(pd.DataFrame({"g": group}), ["g"], y, y_pred)[0]
    a = result.groups[0]
    assert (a.positives, a.tpr, a.fpr) == (0, 0.0, 0.25)
    assert result.equalized_odds_difference == pytest.approx(
        equalized_odds_difference(y, y_pred, sensitive_features=group)
    )
    assert any("g='a' has no positive labels" in note for note in result.notes)


def test_ratios_of_all_zero_rates_are_undefined_like_fairlearn() -> None:
    group = np.array(["a", "a", "b", "b"])
    y = np.array([1, 0, 1, 0])
    y_pred = np.zeros(4, dtype=int)  # nobody selected: 0 / 0
    result = fairness_report(pd.DataFrame({"g": group}), ["g"], y, y_pred)[0]
    assert math.isnan(result.demographic_parity_ratio)
    assert math.isnan(float(demographic_parity_ratio(y, y_pred, sensitive_features=group)))
    assert math.isnan(result.equalized_odds_ratio)
    payload = json.dumps(result.to_dict(), allow_nan=False)
    assert '"demographic_parity_ratio": null' in payload


def test_missing_attribute_values_form_their_own_group() -> None:
    frame = pd.DataFrame({"gender": ["f", None, "m", "f", None, "m"]})
    y = np.array([1, 0, 1, 0, 1, 0])
    y_pred = np.array([1, 1, 0, 0, 1, 0])
    result = fairness_report(frame, ["gender"], y, y_pred)[0]
    assert [(g.group, g.size) for g in result.groups] == [("f", 2), ("m", 2), (None, 2)]
    assert result.groups[-1].selection_rate == 1.0
    assert result.demographic_parity_difference == pytest.approx(1.0)


def test_one_result_per_attribute_with_the_primary_metric_per_group() -> None:
    rng = np.random.default_rng(0)
    n = 600
    frame = pd.DataFrame(
        {"gender": rng.choice(["f", "m"], n), "age_band": rng.choice([1, 2, 3], n)}
    )
    y = (rng.random(n) < 0.3).astype(int)
    scores = np.clip(rng.normal(0.3 + 0.3 * y, 0.2), 0, 1)
    y_pred = (scores >= 0.45).astype(int)
    results = fairness_report(
        frame, ["gender", "age_band"], y, y_pred, scores=scores, metric="roc_auc"
    )
    assert [r.attribute for r in results] == ["gender", "age_band"]
    ages = results[1]
    assert [g.group for g in ages.groups] == [1, 2, 3]
    for g in ages.groups:
        rows = frame["age_band"].to_numpy() == g.group
        assert g.metric == pytest.approx(skm.roc_auc_score(y[rows], scores[rows]))
    assert ages.metric_name == "roc_auc"
    json.dumps([r.to_dict() for r in results], allow_nan=False)


def test_bad_inputs_say_what_to_do() -> None:
    frame = pd.DataFrame({"gender": ["f", "m"]})
    with pytest.raises(DataError, match="'race' is not a column"):
        fairness_report(frame, ["race"], [0, 1], [0, 1])
    with pytest.raises(InvalidInputError, match="binary labels 0/1"):
        fairness_report(frame, ["gender"], [0, 2], [0, 1])
    with pytest.raises(InvalidInputError, match="y_pred has 3 values for 2 rows"):
        fairness_report(frame, ["gender"], [0, 1], [0, 1, 1])
    with pytest.raises(InvalidInputError, match="needs scores"):
        fairness_report(frame, ["gender"], [0, 1], [0, 1], metric="roc_auc")
    assert fairness_report(frame, [], [0, 1], [0, 1]) == []
    assert isinstance(fairness_report(frame, ["gender"], [0, 1], [0, 1])[0], FairnessResult)


def test_equalized_odds_ratio_without_any_false_positive_is_the_tpr_ratio() -> None:
    # FPR is 0 everywhere, so its ratio is 0/0; fairlearn then returns the TPR ratio.
    group = np.array(["a", "a", "a", "b", "b"])
    y = np.array([1, 1, 0, 1, 0])
    y_pred = np.array([1, 0, 0, 1, 0])
    result = fairness_report(pd.DataFrame({"g": group}), ["g"], y, y_pred)[0]
    assert result.equalized_odds_ratio == pytest.approx(0.5)
    assert result.equalized_odds_ratio == pytest.approx(
        equalized_odds_ratio(y, y_pred, sensitive_features=group)
    )
