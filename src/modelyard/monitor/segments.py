"""Drift by segment: each value of a segment column compared with its own reference rows.

    found = drift_by_segment(train_frame, recent_frame, "region", ["income", "purpose"])
    found.reports["north"].drifted_features
    found.new_values          # segment values the reference never had

A segment's baseline is fitted on the reference rows with that value and
compared with the current rows with that value, by the tests of
``monitor.drift`` (so a small segment is judged by its p-value tests). A
missing segment value is a segment of its own, ``(missing)``. Segments with
fewer than ``min_rows`` current rows, or with no reference row, are not
compared; the latter are listed in ``new_values``.

Each column is read once and put in segment order once; every segment is a
slice of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modelyard.data.schema import decoded
from modelyard.errors import DataError, InvalidInputError
from modelyard.monitor.baseline import ColumnBaseline, Kind, fit_column, skip_reason
from modelyard.monitor.drift import (
    DriftOptions,
    DriftReport,
    Progress,
    measure_groups,
    resolve_columns,
)
from modelyard.monitor.samples import TableSource, open_table
from modelyard.spec import DriftThresholds

__all__ = ["MISSING", "SegmentDrift", "drift_by_segment"]

MISSING = "(missing)"


@dataclass(frozen=True)
class SegmentDrift:
    """One drift report per value of the ``segment`` column."""

    segment: str
    reports: dict[str, DriftReport]
    new_values: tuple[str, ...] = ()

    @property
    def drifted_segments(self) -> list[str]:
        return [value for value, report in self.reports.items() if report.drifted_features]

    def to_dict(self) -> dict[str, Any]:
        return {
            "segment": self.segment,
            "new_values": list(self.new_values),
            "segments": {value: report.to_dict() for value, report in self.reports.items()},
        }


def drift_by_segment(
    reference: TableSource,
    current: TableSource,
    segment: str,
    columns: Sequence[str] | None = None,
    *,
    min_rows: int = 1,
    predictions: Sequence[str] = (),
    thresholds: DriftThresholds | None = None,
    tests: Mapping[str, str] | None = None,
    categorical: Iterable[str] = (),
    reference_name: str = "reference",
    current_name: str = "current",
    workers: int | None = None,
    progress: Progress | None = None,
) -> SegmentDrift:
    """Drift per value of ``segment`` (see the module docstring)."""
    if min_rows < 1:
        raise InvalidInputError(f"min_rows must be at least 1; got {min_rows}.")
    options = DriftOptions.of(thresholds, tests, predictions, progress)
    ref_table = open_table(reference, "the reference")
    cur_table = open_table(current, "the current data")
    ref_labels = _labels(ref_table.column(segment))
    cur_labels = _labels(cur_table.column(segment))
    values = sorted(set(ref_labels.tolist()) & set(cur_labels.tolist()))
    ref_order, ref_bounds = _groups(ref_labels, values)
    cur_order, cur_bounds = _groups(cur_labels, values)
    kept = [i for i, (lo, hi) in enumerate(cur_bounds) if hi - lo >= min_rows]
    names = resolve_columns(columns, predictions, ref_table.names, cur_table.names, segment)
    chosen, as_category = {*(columns or ()), *predictions}, set(categorical)

    def column(name: str) -> tuple[list[ColumnBaseline], list[pa.ChunkedArray]] | str:
        ref_values = ref_table.column(name)
        reason = None if name in chosen else skip_reason(ref_values, name)
        if reason is not None:
            return reason
        kind: Kind | None = "categorical" if name in as_category else None
        ordered_ref = decoded(ref_values).take(ref_order)
        ordered_cur = decoded(cur_table.column(name)).take(cur_order)
        bases, slices = [], []
        for i in kept:
            (ref_lo, ref_hi), (cur_lo, cur_hi) = ref_bounds[i], cur_bounds[i]
            bases.append(fit_column(name, ordered_ref.slice(ref_lo, ref_hi - ref_lo), kind))
            slices.append(pa.chunked_array([ordered_cur.slice(cur_lo, cur_hi - cur_lo)]))
        return bases, slices

    per_segment, skipped = measure_groups(names, column, len(kept), options, workers)
    reports = {}
    for i, features in zip(kept, per_segment, strict=True):
        value = values[i]
        rows = (ref_bounds[i][1] - ref_bounds[i][0], cur_bounds[i][1] - cur_bounds[i][0])
        label = f" [{segment} = {value}]"
        reports[value] = DriftReport(
            reference_name + label,
            current_name + label,
            rows,
            features,
            options.thresholds,
            skipped,
        )
    new_values = tuple(sorted(set(cur_labels.tolist()) - set(ref_labels.tolist())))
    return SegmentDrift(segment, reports, new_values)


def _labels(array: pa.ChunkedArray) -> np.ndarray:
    """Each row's segment value as text (``MISSING`` for null)."""
    plain = decoded(array)
    if pa.types.is_floating(plain.type):
        plain = pc.if_else(pc.is_nan(plain), pa.scalar(None, plain.type), plain)
    if not (pa.types.is_string(plain.type) or pa.types.is_large_string(plain.type)):
        try:
            plain = plain.cast(pa.string())
        except pa.ArrowNotImplementedError as exc:
            raise DataError(
                f"The segment column holds {plain.type} values, which cannot name a segment; "
                "use a column of categories or whole numbers."
            ) from exc
    return np.asarray(plain.fill_null(MISSING).to_numpy(zero_copy_only=False), dtype=object)


def _groups(labels: np.ndarray, values: Sequence[str]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Row order grouping ``values`` (others last) and each value's [first, end) slice."""
    codes = np.asarray(
        pc.index_in(pa.array(labels, pa.string()), value_set=pa.array(values, pa.string()))
        .fill_null(len(values))
        .to_numpy(zero_copy_only=False),
        dtype=np.int64,
    )
    order = np.argsort(codes, kind="stable")
    ends = np.cumsum(np.bincount(codes, minlength=len(values) + 1))[: len(values)]
    starts = np.concatenate([[0], ends[:-1]]) if len(values) else ends
    return order, [(int(lo), int(hi)) for lo, hi in zip(starts, ends, strict=True)]
