"""Drift over time: the current data cut into tumbling or sliding windows of a timestamp.

    windows = drift_over_windows(train_frame, production_frame, "applied_at", window="1d")
    windows = drift_over_windows(baseline, production_frame, "applied_at",
                                 window="7d", step="1d")        # 7-day windows, one a day
    for w in windows:
        print(w.start, w.rows, w.report.drifted_features)

A window ``[start, start + window)`` holds the rows whose time falls in it.
Window starts are the multiples of ``step`` (default: ``window``, which
makes tumbling windows) counted from 1970-01-01 00:00 UTC, so daily windows
start at midnight UTC; with ``step`` shorter than ``window`` they slide and
overlap. Every window that holds at least ``min_rows`` rows is reported, in
time order; rows without a time are in no window, and times without a time
zone are read as UTC. The window defaults to the
spec's ``drift.window``.

Each column is read once and put in time order once; every window is then
a slice of it, compared with the same baseline (fitted once from the
reference, or a stored ``Baseline``) by the tests of ``monitor.drift``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modelyard.data.schema import decoded
from modelyard.errors import DataError, InvalidInputError
from modelyard.monitor.baseline import Baseline, ColumnBaseline, ReferenceColumns
from modelyard.monitor.drift import (
    DriftOptions,
    DriftReport,
    Progress,
    measure_groups,
    resolve_columns,
)
from modelyard.monitor.samples import TableSource, open_table
from modelyard.spec import DriftThresholds, parse_duration

__all__ = ["MAX_WINDOWS", "WindowDrift", "drift_over_windows"]

#: More windows than this is almost always a step given in the wrong unit.
MAX_WINDOWS = 10_000
_NS = 1_000_000_000


@dataclass(frozen=True)
class WindowDrift:
    """The drift report of one time window ``[start, end)``."""

    start: datetime
    end: datetime
    report: DriftReport

    @property
    def rows(self) -> int:
        return self.report.rows[1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            **self.report.to_dict(),
        }


def drift_over_windows(
    reference: Baseline | TableSource,
    current: TableSource,
    time_column: str,
    columns: Sequence[str] | None = None,
    *,
    window: str | None = None,
    step: str | None = None,
    min_rows: int = 1,
    predictions: Sequence[str] = (),
    thresholds: DriftThresholds | None = None,
    tests: Mapping[str, str] | None = None,
    reference_name: str = "reference",
    workers: int | None = None,
    progress: Progress | None = None,
) -> list[WindowDrift]:
    """One drift report per time window of ``current`` (see the module docstring)."""
    options = DriftOptions.of(thresholds, tests, predictions, progress)
    width, stride = _durations(window or options.thresholds.window, step)
    if min_rows < 1:
        raise InvalidInputError(f"min_rows must be at least 1; got {min_rows}.")
    cur_table = open_table(current, "the current data")
    order, bounds = _windows(_nanoseconds(cur_table.column(time_column)), width, stride, min_rows)
    ref_columns = ReferenceColumns(reference, {*(columns or ()), *predictions})
    names = resolve_columns(columns, predictions, ref_columns.names, cur_table.names, time_column)

    def column(name: str) -> tuple[list[ColumnBaseline], list[pa.ChunkedArray]] | str:
        base = ref_columns.fit(name)
        if isinstance(base, str):
            return base
        ordered = decoded(cur_table.column(name)).take(order)
        slices = [pa.chunked_array([ordered.slice(lo, hi - lo)]) for _, lo, hi in bounds]
        return [base] * len(bounds), slices

    per_window, skipped = measure_groups(names, column, len(bounds), options, workers)
    found = []
    for (start, lo, hi), features in zip(bounds, per_window, strict=True):
        begin = datetime.fromtimestamp(start / _NS, UTC)
        end = begin + timedelta(seconds=width / _NS)
        label = f"{begin:%Y-%m-%d %H:%M}–{end:%Y-%m-%d %H:%M} UTC"
        rows = (ref_columns.rows, hi - lo)
        report = DriftReport(reference_name, label, rows, features, options.thresholds, skipped)
        found.append(WindowDrift(begin, end, report))
    return found


def _durations(window: str, step: str | None) -> tuple[int, int]:
    """The window and step in nanoseconds; the step may not exceed the window."""
    try:
        width = parse_duration(window)
        stride = parse_duration(step) if step is not None else width
    except ValueError as exc:
        raise InvalidInputError(f"Drift window or step {exc}.") from exc
    if stride > width:
        raise InvalidInputError(
            f"The step ({step}) is longer than the window ({window}), which would leave rows "
            "out of every window; use a step at most as long as the window."
        )
    return width * _NS, stride * _NS


def _nanoseconds(array: pa.ChunkedArray) -> np.ndarray:
    """Nanoseconds since the epoch (UTC) of a timestamp or date column; NaT for missing."""
    plain = decoded(array)
    if pa.types.is_date(plain.type):
        plain = plain.cast(pa.timestamp("s"))
    if not pa.types.is_timestamp(plain.type):
        raise DataError(
            f"The time column holds {plain.type} values; windows need timestamps or dates."
        )
    plain = plain.cast(pa.timestamp("ns", plain.type.tz))
    values = pc.cast(plain, pa.int64()).fill_null(np.iinfo(np.int64).min)
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.int64)


def _windows(
    times: np.ndarray, width: int, stride: int, min_rows: int
) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """Row order by time (rows without a time last), and (start, first row, end row) per window."""
    known = times != np.iinfo(np.int64).min
    if not known.any():
        raise DataError("The time column has no value; windows need a time on each row.")
    order = np.argsort(times, kind="stable")
    order = order[known[order]]
    ordered = times[order]
    first = (int(ordered[0]) - width) // stride * stride + stride
    last = int(ordered[-1]) // stride * stride
    starts = np.arange(first, last + 1, stride, dtype=np.int64)
    if len(starts) > MAX_WINDOWS:
        raise InvalidInputError(
            f"The data spans {len(starts):,} windows (more than {MAX_WINDOWS:,}); "
            "use a longer window or step."
        )
    lows = np.searchsorted(ordered, starts, side="left")
    highs = np.searchsorted(ordered, starts + width, side="left")
    bounds = [
        (int(s), int(lo), int(hi))
        for s, lo, hi in zip(starts, lows, highs, strict=True)
        if hi - lo >= min_rows
    ]
    return order, bounds
