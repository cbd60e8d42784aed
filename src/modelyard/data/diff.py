"""What changed between two dataset versions: their schemas and their distributions.

    d = diff(project, "loans@1", "loans@2")
    d.schema_changes      # columns added or dropped; type, nullability, categories, range
    d.columns             # per shared column: mean / std / quantile shift and PSI,
                          # or each category's share before and after

PSI follows the monitor's conventions (DESIGN.md): bins are fitted on A, the
reference, only — A's deciles with open-ended outer bins for numbers, A's
categories plus ``__unseen__`` for categories — and nulls get a bin of their
own, so a rise in missing values shows. Empty bins count as a share of 1e-4
on both sides. A shift is ``moderate`` from the spec's ``drift.psi_warn``
(0.1 by default) and ``major`` from ``drift.psi`` (0.25).

Memory: one column of each version is read at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from modelyard.data.ingest import read_batches
from modelyard.data.schema import ColumnSchema, Schema, decoded

if TYPE_CHECKING:
    from pathlib import Path

    from modelyard.project import Project

EPSILON = 1e-4
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
UNSEEN = "__unseen__"
NULL = "__null__"
Level = Literal["none", "moderate", "major"]


@dataclass(frozen=True)
class SchemaChange:
    """One difference between the schemas of A and B."""

    column: str
    change: str  # added, dropped, type, nullable, categories_added, categories_removed, min, max
    before: Any
    after: Any
    message: str


@dataclass(frozen=True)
class ColumnShift:
    """How one shared column's distribution moved from A to B."""

    column: str
    kind: Literal["numeric", "categorical"]
    psi: float
    level: Level
    null_share: tuple[float, float]
    stats: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    shares: tuple[tuple[str, float, float], ...] = ()


@dataclass(frozen=True)
class DatasetDiff:
    """Everything that differs between versions ``a`` and ``b``."""

    a: str
    b: str
    rows: tuple[int, int]
    schema_changes: tuple[SchemaChange, ...]
    columns: tuple[ColumnShift, ...]

    def change(self, column: str, change: str) -> SchemaChange | None:
        for found in self.schema_changes:
            if found.column == column and found.change == change:
                return found
        return None

    def shift(self, column: str) -> ColumnShift | None:
        for found in self.columns:
            if found.column == column:
                return found
        return None


def diff(project: Project, ref_a: str, ref_b: str) -> DatasetDiff:
    """Compare version ``ref_b`` with the reference ``ref_a``."""
    from modelyard.data.datasets import get_version

    a, b = get_version(project, ref_a), get_version(project, ref_b)
    path_a = project.artifacts.local_path(a.blob)
    path_b = project.artifacts.local_path(b.blob)
    drift = project.spec.drift
    shifts = []
    for column_a in a.schema.columns:
        if column_a.name not in b.schema:
            continue
        limits = (drift.psi_warn, drift.features.get(column_a.name, drift.psi))
        shift = column_shift(column_a, b.schema.column(column_a.name), path_a, path_b, limits)
        if shift is not None:
            shifts.append(shift)
    changes = schema_changes(a.schema, b.schema)
    return DatasetDiff(a.ref, b.ref, (a.n_rows, b.n_rows), tuple(changes), tuple(shifts))


def schema_changes(a: Schema, b: Schema) -> list[SchemaChange]:
    """Columns added or dropped, and per shared column what its schema changed."""
    changes = [
        SchemaChange(c.name, "dropped", c.type, None, f"column '{c.name}' ({c.type}) was dropped")
        for c in a.columns
        if c.name not in b
    ]
    changes += [
        SchemaChange(c.name, "added", None, c.type, f"column '{c.name}' ({c.type}) was added")
        for c in b.columns
        if c.name not in a
    ]
    for column in a.columns:
        if column.name in b:
            changes.extend(_column_changes(column, b.column(column.name)))
    return changes


def _column_changes(a: ColumnSchema, b: ColumnSchema) -> list[SchemaChange]:
    name = a.name
    out = []
    if a.type != b.type:
        out.append(SchemaChange(name, "type", a.type, b.type, f"type {a.type} → {b.type}"))
    if a.nullable != b.nullable:
        text = "now has nulls" if b.nullable else "no longer has nulls"
        out.append(SchemaChange(name, "nullable", a.nullable, b.nullable, text))
    old, new = set(a.categories or ()), set(b.categories or ())
    if a.categories is not None and b.categories is not None:
        for change, values in (("categories_added", new - old), ("categories_removed", old - new)):
            if values:
                shown = ", ".join(repr(v) for v in sorted(values)[:10])
                more = f" and {len(values) - 10} more" if len(values) > 10 else ""
                verb = "new" if change == "categories_added" else "gone"
                text = f"{len(values)} categor{'y' if len(values) == 1 else 'ies'} {verb}: "
                out.append(SchemaChange(name, change, None, sorted(values), text + shown + more))
    if a.type == b.type:
        for bound in ("min", "max"):
            before, after = getattr(a, bound), getattr(b, bound)
            if before != after and before is not None and after is not None:
                out.append(SchemaChange(name, bound, before, after, f"{bound} {before} → {after}"))
    return out


def column_shift(
    a: ColumnSchema, b: ColumnSchema, path_a: Path, path_b: Path, limits: tuple[float, float]
) -> ColumnShift | None:
    """The distribution change of one column, or None when it cannot be compared."""
    numeric = ("integer", "float")
    if a.type in numeric and b.type in numeric:
        return _numeric(a.name, _numbers(path_a, a.name), _numbers(path_b, a.name), limits)
    categorical = ("category", "boolean")
    if a.type in categorical and b.type in categorical:
        return _categorical(a.name, _counts(path_a, a.name), _counts(path_b, a.name), limits)
    return None


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two count vectors over the same bins."""
    p = _shares(expected)
    q = _shares(actual)
    return float(np.sum((q - p) * np.log(q / p)))


# ---------------------------------------------------------------------- numbers


def _numeric(name: str, a: np.ndarray, b: np.ndarray, limits: tuple[float, float]) -> ColumnShift:
    present_a, present_b = a[~np.isnan(a)], b[~np.isnan(b)]
    deciles = np.quantile(present_a, np.linspace(0.1, 0.9, 9)) if len(present_a) else []
    edges: np.ndarray = np.unique(deciles)
    value = psi(_binned(a, present_a, edges), _binned(b, present_b, edges))
    stats = {
        "mean": (_stat(np.mean, present_a), _stat(np.mean, present_b)),
        "std": (_stat(np.std, present_a), _stat(np.std, present_b)),
    }
    for q in QUANTILES:
        stats[f"p{round(q * 100):02d}"] = (_quantile(present_a, q), _quantile(present_b, q))
    return ColumnShift(
        name, "numeric", value, _level(value, limits), (_null_share(a), _null_share(b)), stats
    )


def _binned(values: np.ndarray, present: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bin (−inf, e1], (e1, e2], ..., (ek, +inf), then the null count."""
    bins = np.bincount(np.searchsorted(edges, present, side="left"), minlength=len(edges) + 1)
    return np.append(bins, len(values) - len(present))


def _numbers(path: Path, column: str) -> np.ndarray:
    array = pq.read_table(path, columns=[column]).column(column)
    return np.asarray(array.cast(pa.float64()).to_numpy(), dtype=np.float64)


def _stat(function: Any, values: np.ndarray) -> float | None:
    return float(function(values)) if len(values) else None


def _quantile(values: np.ndarray, q: float) -> float | None:
    return float(np.quantile(values, q)) if len(values) else None


def _null_share(values: np.ndarray) -> float:
    return float(np.isnan(values).mean()) if len(values) else 0.0


# ---------------------------------------------------------------------- categories


def _categorical(
    name: str, a: dict[str, int], b: dict[str, int], limits: tuple[float, float]
) -> ColumnShift:
    bins = [k for k in a if k != NULL]
    counts_a = np.array([a.get(k, 0) for k in bins] + [0, a.get(NULL, 0)], dtype=float)
    unseen = sum(n for k, n in b.items() if k not in a and k != NULL)
    counts_b = np.array([b.get(k, 0) for k in bins] + [unseen, b.get(NULL, 0)], dtype=float)
    value = psi(counts_a, counts_b)
    total_a, total_b = max(sum(a.values()), 1), max(sum(b.values()), 1)
    shares = [(k, a.get(k, 0) / total_a, b.get(k, 0) / total_b) for k in sorted({*a, *b} - {NULL})]
    shares.sort(key=lambda s: -abs(s[2] - s[1]))
    nulls = (a.get(NULL, 0) / total_a, b.get(NULL, 0) / total_b)
    return ColumnShift(name, "categorical", value, _level(value, limits), nulls, {}, tuple(shares))


def _counts(path: Path, column: str) -> dict[str, int]:
    """Each value's row count (nulls under ``NULL``), read one row group at a time."""
    counts: dict[str, int] = {}
    for batch in read_batches(path, columns=[column]):
        for entry in pc.value_counts(decoded(batch.column(0))).to_pylist():
            value = entry["values"]
            key = NULL if value is None else str(value)
            counts[key] = counts.get(key, 0) + entry["counts"]
    return counts


# ---------------------------------------------------------------------- shared


def _shares(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    shares = counts / total if total else np.zeros_like(counts)
    return np.where(shares > 0, shares, EPSILON)


def _level(value: float, limits: tuple[float, float]) -> Level:
    warn, alert = limits
    return "major" if value >= alert else "moderate" if value >= warn else "none"
