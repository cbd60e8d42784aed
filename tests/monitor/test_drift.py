"""Drift detection: the default tests, the demo's drifted period, missing rates, predictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from scipy.spatial import distance

from modelyard.data.demo import make_loans
from modelyard.errors import DataError, InvalidInputError
from modelyard.monitor.baseline import Baseline, fit_baseline
from modelyard.monitor.drift import compare, detect_drift, prediction_drift
from modelyard.spec import DriftThresholds

DRIFTED = {"income", "loan_amount", "interest_rate", "delinquencies_2y", "purpose"}
STABLE = {
    "age",
    "term_months",
    "credit_score",
    "debt_to_income",
    "employment_years",
    "open_accounts",
    "home_ownership",
    "region",
    "gender",
}


def _mixed(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """Numbers of every shape and categories; ``shift`` moves ``normal`` by that many sds."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "normal": rng.normal(shift, 1, rows),
            "amount": np.round(rng.lognormal(7, 0.8, rows), 2),
            "rate": np.round(rng.normal(12, 3, rows), 2),
            "count": rng.poisson(0.3, rows),
            "term": rng.choice([36, 60], rows, p=[0.7, 0.3]),
            "flag": (rng.random(rows) < 0.05).astype(int),
            "city": rng.choice([f"city{i}" for i in range(30)], rows),
            "tier": rng.choice(["gold", "silver", "bronze"], rows, p=[0.2, 0.3, 0.5]),
        }
    )
    frame.loc[rng.random(rows) < 0.02, "amount"] = np.nan
    frame.loc[rng.random(rows) < 0.01, "city"] = None
    return frame


@pytest.mark.parametrize("seed", [7, 11])
def test_the_demo_drifted_period_flags_the_drifted_features_and_not_the_stable_ones(
    seed: int,
) -> None:
    loans = make_loans(50_000, seed=seed)
    reference = loans[loans["period"] == "reference"]
    recent = loans[loans["period"] == "recent"]
    report = compare(reference, recent, sorted(DRIFTED | STABLE))
    assert set(report.drifted_features) == DRIFTED
    for name in STABLE:
        feature = report.feature(name)
        assert not feature.drifted, (name, feature.test, feature.value)
    assert report.feature("income").test == "wasserstein"
    assert report.feature("purpose").test == "jensenshannon"
    assert not report.dataset_drifted  # 5 of 14 features, below the default half


def test_two_samples_of_one_distribution_flag_nothing_though_p_values_would() -> None:
    reference, current = _mixed(200_000, 1), _mixed(200_000, 2, shift=0.02)
    report = compare(reference, current)
    assert report.drifted_features == []
    normal = report.feature("normal")
    # A 0.02 sd shift is "significant" at this size, and immaterial: effect sizes decide.
    assert sps.ks_2samp(reference["normal"], current["normal"]).pvalue < 0.01
    assert normal.test == "wasserstein" and normal.value is not None and normal.value < 0.05


def test_report_statistics_match_scipy_on_the_same_rows() -> None:
    reference, current = _mixed(3_000, 3), _mixed(2_000, 4, shift=0.3)
    report = compare(reference, current)
    ref_amount, cur_amount = reference["amount"].dropna(), current["amount"].dropna()
    amount = report.feature("amount").statistics
    assert amount["wasserstein"] == pytest.approx(
        sps.wasserstein_distance(ref_amount, cur_amount) / np.std(ref_amount), rel=1e-9
    )
    assert "ks" not in amount  # large samples: KS only when asked for
    forced = compare(reference, current, ["amount"], tests={"amount": "ks"}).feature("amount")
    expected = sps.ks_2samp(ref_amount, cur_amount)
    assert forced.statistics["ks"] == pytest.approx(expected.statistic, abs=1e-12)
    assert (
        forced.value == forced.statistics["ks_pvalue"] == pytest.approx(expected.pvalue, rel=1e-9)
    )
    tier = report.feature("tier")
    ref_shares = reference["tier"].value_counts(normalize=True).sort_index()
    cur_shares = current["tier"].value_counts(normalize=True).reindex(ref_shares.index)
    expected_js = distance.jensenshannon(ref_shares, cur_shares, base=2)
    assert tier.statistics["jensenshannon"] == pytest.approx(expected_js, abs=1e-9)
    assert tier.bins == ("bronze", "gold", "silver", "__unseen__")


def test_small_samples_are_judged_by_p_values() -> None:
    reference, current = _mixed(400, 5), _mixed(300, 6, shift=0.6)
    report = compare(reference, current)
    normal, tier = report.feature("normal"), report.feature("tier")
    assert normal.test == "ks" and normal.threshold == 0.01
    assert normal.value == pytest.approx(
        sps.ks_2samp(reference["normal"], current["normal"]).pvalue, rel=1e-9
    )
    assert normal.drifted
    assert tier.test == "chi2"
    table = pd.crosstab(
        np.r_[np.zeros(400), np.ones(300)], np.r_[reference["tier"], current["tier"]]
    )
    assert tier.value == pytest.approx(
        sps.chi2_contingency(table.to_numpy(), correction=False).pvalue, rel=1e-9
    )
    assert report.feature("term").test == "chi2"  # numbers with two values: binned by value


def test_a_change_in_the_missing_rate_is_detected_and_reported() -> None:
    rng = np.random.default_rng(8)
    reference = pd.DataFrame({"income": rng.lognormal(10, 0.5, 50_000)})
    current = pd.DataFrame({"income": rng.lognormal(10, 0.5, 50_000)})
    reference.loc[rng.random(50_000) < 0.02, "income"] = np.nan
    current.loc[rng.random(50_000) < 0.12, "income"] = np.nan
    income = compare(reference, current).feature("income")
    assert income.drifted and income.missing_drifted and not income.distribution_drifted
    assert income.missing_change == pytest.approx(0.10, abs=0.01)
    assert income.missing_test == "psi" and income.missing_value >= 0.1
    small = compare(reference.head(500), current.head(500).assign(income=np.nan)).feature("income")
    assert small.missing_test == "chi2" and small.missing_drifted
    assert small.test is None and small.value is None  # no current value to compare


def test_a_psi_limit_in_the_spec_makes_psi_decide_for_that_feature() -> None:
    reference, current = _mixed(5_000, 9), _mixed(5_000, 10, shift=0.4)
    limits = DriftThresholds(features={"normal": 0.5})
    normal = compare(reference, current, ["normal"], thresholds=limits).feature("normal")
    assert (normal.test, normal.threshold) == ("psi", 0.5)
    assert normal.value == normal.statistics["psi"] and not normal.drifted  # PSI ~ 0.15 < 0.5
    chosen = compare(reference, current, ["normal"], tests={"normal": "jensenshannon"})
    assert chosen.feature("normal").test == "jensenshannon"


def test_bad_test_choices_are_refused_with_the_allowed_ones() -> None:
    frame = _mixed(100, 11)
    with pytest.raises(InvalidInputError, match="use one of ks, chi2"):
        compare(frame, frame, ["normal"], tests={"normal": "anderson"})
    with pytest.raises(InvalidInputError, match="needs numbers"):
        compare(frame, frame, ["tier"], tests={"tier": "ks"})
    with pytest.raises(InvalidInputError, match="not compared"):
        compare(frame, frame, ["normal"], tests={"tier": "psi"})


def test_prediction_drift_is_reported_apart_from_the_features() -> None:
    reference = _mixed(20_000, 12).assign(score=np.random.default_rng(1).beta(2, 5, 20_000))
    current = _mixed(20_000, 13).assign(score=np.random.default_rng(2).beta(3, 4, 20_000))
    report = compare(reference, current, ["normal", "tier"], predictions=["score"])
    assert report.feature("score").role == "prediction"
    assert report.prediction_drifted and report.drifted_features == []
    assert report.drift_share == 0.0
    alone = prediction_drift(reference["score"], current["score"])
    assert alone.value == pytest.approx(report.feature("score").value, rel=1e-12)


def test_a_stored_baseline_gives_the_same_report_as_the_reference_itself() -> None:
    reference, current = _mixed(4_000, 14), _mixed(3_000, 15, shift=0.2)
    baseline = Baseline.from_dict(json.loads(json.dumps(fit_baseline(reference).to_dict())))
    stored, direct = detect_drift(baseline, current), compare(reference, current)
    for a, b in zip(stored.features, direct.features, strict=True):
        assert (a.feature, a.test, a.drifted) == (b.feature, b.test, b.drifted)
        assert a.statistics == pytest.approx(b.statistics, rel=1e-12)


def test_parquet_files_threads_and_frames_give_one_answer(tmp_path: Path) -> None:
    reference, current = _mixed(3_000, 16), _mixed(3_000, 17, shift=0.2)
    reference.to_parquet(tmp_path / "ref.parquet")
    current.to_parquet(tmp_path / "cur.parquet")
    from_files = compare(tmp_path / "ref.parquet", tmp_path / "cur.parquet", workers=3)
    in_memory = compare(reference, current, workers=1)
    assert [f.to_dict() for f in from_files.features] == [f.to_dict() for f in in_memory.features]


def test_the_data_set_drifts_when_enough_features_do() -> None:
    reference = _mixed(5_000, 18)
    current = _mixed(5_000, 19, shift=1.0).assign(tier="gold")
    report = compare(reference, current, ["normal", "tier", "rate"])
    assert report.drifted_features == ["normal", "tier"]
    assert report.drift_share == pytest.approx(2 / 3)
    assert report.dataset_drifted
    strict = compare(
        reference,
        current,
        ["normal", "tier", "rate"],
        thresholds=DriftThresholds(dataset_share=0.9),
    )
    assert not strict.dataset_drifted


def test_missing_columns_and_changed_types_are_explained() -> None:
    reference = _mixed(200, 20)
    with pytest.raises(DataError, match="not in the current data"):
        compare(reference, reference.drop(columns="rate"), ["rate"])
    with pytest.raises(DataError, match="holds numbers in the reference"):
        compare(reference, reference.assign(rate="high"), ["rate"])
    with pytest.raises(DataError, match="no column in common"):
        compare(reference[["rate"]], reference[["tier"]])


def test_the_monitor_package_lists_its_public_names_once() -> None:
    from modelyard import monitor

    assert len(monitor.__all__) == len(set(monitor.__all__))
    assert set(monitor.__all__) == set(monitor._EXPORTS) == set(dir(monitor))
    for name in monitor.__all__:
        assert getattr(monitor, name) is not None, name
    with pytest.raises(AttributeError, match="no_such_thing"):
        monitor.no_such_thing  # noqa: B018
