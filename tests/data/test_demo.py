import numpy as np

from modelyard.data.demo import DEMO_SPEC, make_loans
from modelyard.spec import parse_spec


def test_demo_data_is_reproducible_and_realistic() -> None:
    a, b = make_loans(5_000, seed=3), make_loans(5_000, seed=3)
    assert a.equals(b)
    assert not a.equals(make_loans(5_000, seed=4))
    assert a["loan_id"].is_unique
    for column in ("income", "credit_score", "employment_years"):
        assert 0 < a[column].isna().mean() < 0.1
    assert 0.05 < a["default"].mean() < 0.25
    assert a["applied_at"].is_monotonic_increasing


def test_the_recent_period_drifts() -> None:
    f = make_loans(20_000, seed=1)
    old, new = f[f["period"] == "reference"], f[f["period"] == "recent"]
    assert len(new) == 4_000
    assert new["income"].median() < 0.85 * old["income"].median()
    assert new["interest_rate"].mean() > old["interest_rate"].mean() + 1
    assert new["default"].mean() > old["default"].mean()
    assert new["applied_at"].min() > old["applied_at"].max()


def test_gender_does_not_drive_the_true_risk() -> None:
    f = make_loans(40_000, seed=2)
    rates = f.groupby("gender")["default"].mean()
    assert np.ptp(rates[["female", "male"]]) < 0.02


def test_demo_spec_is_valid_and_matches_the_data() -> None:
    spec = parse_spec(DEMO_SPEC)
    columns = set(make_loans(1_000).columns)
    assert spec.target in columns
    assert {
        spec.columns.id,
        spec.columns.time,
        *spec.columns.sensitive,
        *spec.columns.pii,
    } <= columns


def test_numeric_features_are_the_numeric_columns() -> None:
    from modelyard.data.demo import NUMERIC_FEATURES

    frame = make_loans(500)
    numeric = [c for c in frame.columns if frame[c].dtype.kind in "if" and c != "default"]
    assert list(NUMERIC_FEATURES) == numeric
