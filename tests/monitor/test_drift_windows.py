"""Drift over tumbling and sliding time windows, and drift per segment."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from modelyard.errors import DataError, InvalidInputError
from modelyard.monitor.baseline import fit_baseline
from modelyard.monitor.segments import MISSING, drift_by_segment
from modelyard.monitor.windows import drift_over_windows

DAY = pd.Timedelta(days=1)


def _traffic(days: int = 10, per_day: int = 2_000, drift_from: int = 6) -> pd.DataFrame:
    """Hourly-spread rows; from day ``drift_from`` on, ``x`` moves by 1 sd and ``kind`` flips."""
    rng = np.random.default_rng(0)
    rows = days * per_day
    offsets = np.sort(rng.integers(0, days * 86_400, rows))
    when = pd.Timestamp("2025-03-01", tz="UTC") + pd.to_timedelta(offsets, unit="s")
    late = offsets >= drift_from * 86_400
    return pd.DataFrame(
        {
            "when": when,
            "x": rng.normal(np.where(late, 1.0, 0.0), 1.0),
            "kind": np.where(rng.random(rows) < np.where(late, 0.8, 0.3), "a", "b"),
            "stable": rng.normal(0, 1, rows),
        }
    )


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "x": rng.normal(0, 1, 20_000),
            "kind": np.where(rng.random(20_000) < 0.3, "a", "b"),
            "stable": rng.normal(0, 1, 20_000),
        }
    )


def test_tumbling_daily_windows_start_at_midnight_utc_and_hold_that_days_rows(
    reference: pd.DataFrame,
) -> None:
    traffic = _traffic()
    windows = drift_over_windows(reference, traffic, "when", window="1d")
    per_day = traffic.groupby(traffic["when"].dt.floor("D")).size()
    assert [w.start for w in windows] == list(per_day.index.to_pydatetime())
    assert [w.rows for w in windows] == per_day.tolist()
    assert all(w.end - w.start == DAY for w in windows)
    drifted = [w.start.day for w in windows if w.report.drifted_features]
    assert drifted == [7, 8, 9, 10]  # day index 6 onwards, dates from the 1st
    for w in windows:
        assert "stable" not in w.report.drifted_features
        assert set(w.report.drifted_features) in (set(), {"x", "kind"})


def test_sliding_windows_overlap_and_each_holds_its_span(reference: pd.DataFrame) -> None:
    traffic = _traffic(days=4)
    windows = drift_over_windows(
        fit_baseline(reference), traffic, "when", ["x"], window="2d", step="12h"
    )
    first, last = traffic["when"].min(), traffic["when"].max()
    for w in windows:
        inside = (traffic["when"] >= w.start) & (traffic["when"] < w.end)
        assert w.rows == int(inside.sum()) > 0
        assert w.end - w.start == 2 * DAY
    step = pd.Timedelta(hours=12)
    # the first window is the earliest to hold the first row, the last the latest to start
    assert windows[0].start <= first < windows[0].end <= first + step
    assert windows[-1].start <= last < windows[-1].start + step
    starts = [w.start for w in windows]
    assert all(b - a == step for a, b in itertools.pairwise(starts))


def test_small_windows_fall_back_to_p_value_tests_and_min_rows_drops_thin_ones(
    reference: pd.DataFrame,
) -> None:
    traffic = _traffic(days=3, per_day=600)
    windows = drift_over_windows(reference, traffic, "when", ["x", "kind"], window="6h")
    assert {w.report.feature("x").test for w in windows} == {"ks"}
    assert {w.report.feature("kind").test for w in windows} == {"chi2"}
    kept = drift_over_windows(
        reference, traffic, "when", ["x"], window="6h", min_rows=151, workers=1
    )
    assert all(w.rows >= 151 for w in kept) and len(kept) < len(windows)


def test_window_arguments_are_checked(reference: pd.DataFrame) -> None:
    traffic = _traffic(days=2)
    with pytest.raises(InvalidInputError, match="longer than the window"):
        drift_over_windows(reference, traffic, "when", window="1h", step="2h")
    with pytest.raises(InvalidInputError, match="duration"):
        drift_over_windows(reference, traffic, "when", window="one day")
    with pytest.raises(DataError, match="timestamps or dates"):
        drift_over_windows(reference, traffic.assign(when=1.0), "when")
    with pytest.raises(InvalidInputError, match="windows"):
        drift_over_windows(reference, traffic, "when", window="1d", step="1s")


def test_drift_by_segment_flags_only_the_segment_that_moved() -> None:
    rng = np.random.default_rng(2)

    def sample(rows: int, moved: float) -> pd.DataFrame:
        region = rng.choice(["north", "south", "east"], rows)
        region = region.astype(object)
        region[rng.random(rows) < 0.02] = None
        x = rng.normal(0, 1, rows) + np.where(region == "north", moved, 0.0)
        return pd.DataFrame({"region": region, "x": x, "y": rng.normal(0, 1, rows)})

    reference, current = sample(30_000, 0.0), sample(30_000, 0.8)
    current.loc[:99, "region"] = "west"  # a value the reference never had
    found = drift_by_segment(reference, current, "region")
    assert set(found.reports) == {"north", "south", "east", MISSING}
    assert found.drifted_segments == ["north"]
    assert found.reports["north"].drifted_features == ["x"]
    assert found.new_values == ("west",)
    north_rows = (reference["region"] == "north").sum(), (current["region"] == "north").sum()
    assert found.reports["north"].rows == north_rows
    assert found.to_dict()["segments"]["north"]["drifted_features"] == ["x"]
