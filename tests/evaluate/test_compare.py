"""Champion vs challenger: paired bootstrap verdicts and McNemar's test."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom
from sklearn.ensemble import RandomForestClassifier

from modelyard.data.demo import NUMERIC_FEATURES, make_loans
from modelyard.errors import InvalidInputError
from modelyard.evaluate.compare import (
    Comparison,
    Scored,
    compare_models,
    mcnemar,
    mcnemar_from_counts,
)
from modelyard.spec import parse_spec

NUMERIC = list(NUMERIC_FEATURES)
METRICS = ["roc_auc", "log_loss", "brier", "accuracy", "recall", "f1"]


@pytest.fixture(scope="module")
def small_loans() -> tuple[pd.DataFrame, pd.DataFrame]:
    """1,000 training and 600 evaluation rows of the demo data: small data."""
    loans = make_loans(1600, recent_share=0.0, seed=11).fillna(0)
    return loans.iloc[:1000], loans.iloc[1000:]


def _forest(
    loans: tuple[pd.DataFrame, pd.DataFrame], seed: int, features: list[str] = NUMERIC
) -> Scored:
    train, rows = loans
    model = RandomForestClassifier(n_estimators=100, min_samples_leaf=5, random_state=seed)
    model.fit(train[features], train["default"])
    scores = model.predict_proba(rows[features])[:, 1]
    return Scored(scores, (scores >= 0.2).astype(int))


def test_models_that_differ_only_by_seed_show_no_evidence(
    small_loans: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    y = small_loans[1]["default"].to_numpy()
    a, b = _forest(small_loans, seed=0), _forest(small_loans, seed=1)
    results = compare_models(y, a, b, METRICS)
    assert [r.metric for r in results] == METRICS
    assert [r.verdict for r in results] == ["no evidence"] * len(METRICS)
    for r in results:
        assert r.ci_low <= 0 <= r.ci_high
        assert r.diff == pytest.approx(r.b - r.a)


def test_a_clearly_better_model_is_better_and_the_reverse_is_worse(
    small_loans: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    y = small_loans[1]["default"].to_numpy()
    strong = _forest(small_loans, seed=0)
    weak = _forest(small_loans, seed=0, features=["age", "open_accounts"])
    forward = compare_models(y, weak, strong, METRICS)
    assert [r.verdict for r in forward] == ["better"] * len(METRICS)
    backward = compare_models(y, strong, weak, METRICS)
    assert [r.verdict for r in backward] == ["worse"] * len(METRICS)
    log_loss = forward[1]
    assert log_loss.direction == "min" and log_loss.ci_high < 0  # lower log loss is better
    accuracy = forward[3].mcnemar
    assert accuracy is not None and accuracy.p_value < 0.05 and accuracy.b_only > accuracy.a_only


def test_a_model_against_itself_has_a_zero_width_interval() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    model = Scored(rng.random(300), rng.integers(0, 2, 300))
    for r in compare_models(y, model, model, ["roc_auc", "recall", "accuracy"], n_boot=200):
        assert (r.diff, r.ci_low, r.ci_high, r.verdict) == (0.0, 0.0, 0.0, "no evidence")


def test_directions_come_from_goals_pairs_or_the_catalogue() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    good = Scored(np.clip(y * 0.6 + rng.random(500) * 0.4, 0, 1))
    bad = Scored(rng.random(500))
    spec = parse_spec("name: p\ntask: binary\ntarget: t\nmetrics:\n  - name: roc_auc\n")
    goals = list(spec.metric_goals("model"))
    assert compare_models(y, bad, good, goals, n_boot=300)[0].verdict == "better"
    # A direction given explicitly wins (here: pretend lower ROC-AUC is better).
    assert compare_models(y, bad, good, [("roc_auc", "min")], n_boot=300)[0].verdict == "worse"
    with pytest.raises(InvalidInputError, match="must be 'max'"):
        compare_models(y, bad, good, [("roc_auc", "up")])
    with pytest.raises(InvalidInputError, match="at least one metric"):
        compare_models(y, bad, good, [])


def test_mcnemar_chi_square_matches_a_worked_example() -> None:
    # The drug-trial table on Wikipedia's "McNemar's test" page: b = 121, c = 59.
    # Uncorrected: (121 - 59)² / 180 = 21.36; with Edwards' correction
    # (|121 - 59| - 1)² / 180 = 3721 / 180 = 20.672..., and for one degree of
    # freedom P(χ² > x) = erfc(√(x / 2)).
    result = mcnemar_from_counts(121, 59)
    assert result.method == "chi2"
    assert result.statistic == pytest.approx(3721 / 180)
    assert result.p_value == pytest.approx(math.erfc(math.sqrt(3721 / 180 / 2)), rel=1e-9)
    assert 1e-6 < result.p_value < 1e-5


def test_mcnemar_exact_test_matches_a_hand_computed_binomial() -> None:
    # 1 row only a gets right, 7 only b gets right: under H0 each is a fair coin, so
    # p = 2 · P(X <= 1 | n = 8) = 2 · (1 + 8) / 256 = 0.0703125.
    result = mcnemar_from_counts(1, 7)
    assert (result.method, result.statistic) == ("exact", 1.0)
    assert result.p_value == pytest.approx(18 / 256, rel=1e-12)
    assert mcnemar_from_counts(0, 0).p_value == 1.0
    assert mcnemar_from_counts(30, 30).p_value == 1.0  # no difference at all
    # the exact two-sided test agrees with the binomial tail on a larger symmetric case
    big = mcnemar_from_counts(5, 15, exact_below=100)
    assert big.p_value == pytest.approx(2 * binom.cdf(5, 20, 0.5), rel=1e-12)


def test_mcnemar_counts_the_rows_where_exactly_one_model_is_right() -> None:
    y = np.array([1, 1, 0, 0, 1, 0, 1, 0])
    a = np.array([1, 1, 0, 1, 0, 0, 1, 1])  # right on rows 0, 1, 2, 5, 6
    b = np.array([1, 0, 0, 0, 1, 1, 1, 0])  # right on rows 0, 2, 3, 4, 6, 7
    result = mcnemar(y, a, b)
    assert (result.a_only, result.b_only) == (2, 3)  # a only: 1, 5; b only: 3, 4, 7
    assert result.p_value == pytest.approx(1.0)
    with pytest.raises(InvalidInputError, match="one value per row"):
        mcnemar(y, a[:3], b)


def test_multiclass_accuracy_uses_the_arg_max_for_mcnemar() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 400)
    sharp = np.eye(3)[y] * 0.5 + rng.dirichlet(np.ones(3), 400) * 0.5
    vague = rng.dirichlet(np.ones(3), 400)
    result = compare_models(y, Scored(vague), Scored(sharp), ["accuracy", "log_loss"])
    assert [r.verdict for r in result] == ["better", "better"]
    assert result[0].mcnemar is not None
    assert result[0].mcnemar.b_only > result[0].mcnemar.a_only


def test_comparison_serialises_to_json() -> None:
    test = mcnemar_from_counts(3, 4)
    row = Comparison(
        "accuracy", "max", 0.8, 0.82, 0.02, -0.01, float("nan"), "no evidence", 0.05, 10, test
    )
    payload = json.loads(json.dumps(row.to_dict(), allow_nan=False))
    assert payload["ci_high"] is None
    assert payload["mcnemar"]["method"] == "exact"
