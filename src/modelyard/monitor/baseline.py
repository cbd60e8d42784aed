"""The drift baseline: what the reference data looked like, fitted once and kept.

    baseline = fit_baseline(train_frame, ["income", "purpose"])   # or an Arrow table / Parquet
    stored = baseline.to_dict()             # JSON, to keep next to the model version
    baseline = Baseline.from_dict(stored)   # later: compare production data with it

Per column it keeps the bins, the reference's rows per bin, its missing
count, and for numbers the values themselves (for KS and Wasserstein) and
their standard deviation. Bins are fitted on the reference only, so current
data is never re-binned:

- **quantiles** (numbers with more than ``VALUE_BINS`` (5) distinct values):
  the reference's deciles (``numpy.quantile``'s default linear interpolation),
  repeated edges dropped; bins ``(-inf, e1], (e1, e2], ..., (ek, +inf)``, so
  the outer bins are open-ended and every current value has a bin;
- **values** (numbers with at most ``VALUE_BINS`` distinct values, such as
  flags or a 36 / 60 month term): one bin per reference value, plus
  ``__unseen__`` for any other value;
- **categories** (text, booleans): one bin per reference category, plus
  ``__unseen__`` for categories the reference never had.

Missing values (null, NaN, ±inf) are in no bin: they are counted apart, and
the monitor compares the missing rates on their own.

Stored form: ``to_dict(max_values)`` keeps a numeric column's values exactly
when it has at most ``max_values`` (10,000) distinct values; otherwise it
keeps ``max_values`` order statistics at evenly spaced ranks, so the stored
empirical CDF is within 1 / (max_values − 1) of the real one. The row counts
(for p-values) and the standard deviation are always those of the full reference.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modelyard.data.schema import CATEGORY_LIMIT
from modelyard.errors import DataError, InvalidInputError
from modelyard.monitor.samples import (
    CategoricalSample,
    NumericSample,
    TableSource,
    categorical_sample,
    column_kind,
    numeric_sample,
    open_table,
)

__all__ = [
    "BINS",
    "FORMAT",
    "STORED_VALUES",
    "UNSEEN",
    "VALUE_BINS",
    "Baseline",
    "Bins",
    "ColumnBaseline",
    "ReferenceColumns",
    "fit_baseline",
    "fit_column",
    "skip_reason",
]

FORMAT = "modelyard.drift-baseline/1"
BINS = 10
VALUE_BINS = 5
STORED_VALUES = 10_000
UNSEEN = "__unseen__"
Kind = Literal["numeric", "categorical"]
Binning = Literal["quantiles", "values", "categories"]


@dataclass(frozen=True)
class Bins:
    """How values are binned: inner edges (quantiles), values, or categories."""

    kind: Binning
    edges: np.ndarray  # quantiles: inner edges; values: the reference's distinct values
    categories: tuple[str, ...] = ()

    @property
    def labels(self) -> list[str]:
        """One short label per bin, in order: a quantile bin ``(a, b]`` is ``≤ b``."""
        if self.kind == "categories":
            return [*self.categories, UNSEEN]
        if self.kind == "values":
            return [*(f"{v:g}" for v in self.edges), UNSEEN]
        if not len(self.edges):
            return ["all values"]
        return [*(f"≤ {_short(e)}" for e in self.edges), f"> {_short(self.edges[-1])}"]

    def count(self, sample: NumericSample | CategoricalSample) -> np.ndarray:
        """Rows of ``sample`` per bin (missing values excluded)."""
        if isinstance(sample, CategoricalSample):
            return self._count_categories(sample)
        size = len(self.edges) + 1
        if self.kind == "quantiles":  # the values are sorted: cut them at the edges
            cuts = np.searchsorted(sample.values, self.edges, side="right")
            ends = (
                cuts if sample.counts is None else np.cumsum(sample.counts)[cuts - 1] * (cuts > 0)
            )
            return np.diff(ends, prepend=0, append=sample.present).astype(np.int64)
        # value bins: a value's own bin, or the last one (unseen)
        found = np.searchsorted(self.edges, sample.values)
        inside = found < len(self.edges)
        same = np.zeros(len(found), dtype=bool)
        same[inside] = self.edges[found[inside]] == sample.values[inside]
        slots = np.where(same, found, len(self.edges))
        counted = np.bincount(slots, weights=sample.counts, minlength=size)
        return np.rint(counted).astype(np.int64)

    def _count_categories(self, sample: CategoricalSample) -> np.ndarray:
        size = len(self.categories) + 1
        if not sample.categories:
            return np.zeros(size, dtype=np.int64)
        index = pc.index_in(
            pa.array(sample.categories, pa.string()),
            value_set=pa.array(self.categories, pa.string()),
        ).fill_null(len(self.categories))
        slots = np.asarray(index.to_numpy(zero_copy_only=False), dtype=np.int64)
        return np.bincount(slots, weights=sample.counts, minlength=size).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "edges": self.edges.tolist(),
            "categories": list(self.categories),
        }


@dataclass(frozen=True)
class ColumnBaseline:
    """One reference column: its bins and rows per bin, missing count, values and spread."""

    name: str
    kind: Kind
    bins: Bins
    counts: np.ndarray
    rows: int
    missing: int
    sample: NumericSample | None = None
    std: float | None = None

    @property
    def present(self) -> int:
        """Reference rows with a value (the sample may summarise them)."""
        return self.rows - self.missing

    def to_dict(self, max_values: int = STORED_VALUES) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "rows": self.rows,
            "missing": self.missing,
            "bins": self.bins.to_dict(),
            "counts": self.counts.tolist(),
            "std": self.std,
        }
        if self.sample is not None:
            kept = summarise(self.sample, max_values)
            out["values"] = kept.values.tolist()
            out["value_counts"] = None if kept.counts is None else kept.counts.tolist()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnBaseline:
        bins = data["bins"]
        sample = None
        if data.get("values") is not None:
            counts = data.get("value_counts")
            sample = NumericSample(
                np.asarray(data["values"], dtype=np.float64),
                None if counts is None else np.asarray(counts, dtype=np.int64),
                0,
            )
        return cls(
            name=str(data["name"]),
            kind=data["kind"],
            bins=Bins(
                bins["kind"], np.asarray(bins["edges"], dtype=np.float64), tuple(bins["categories"])
            ),
            counts=np.asarray(data["counts"], dtype=np.int64),
            rows=int(data["rows"]),
            missing=int(data["missing"]),
            sample=sample,
            std=data.get("std"),
        )


@dataclass(frozen=True)
class Baseline:
    """The fitted reference columns, in order."""

    columns: tuple[ColumnBaseline, ...]
    rows: int

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnBaseline:
        for c in self.columns:
            if c.name == name:
                return c
        raise DataError(f"The drift baseline has no column '{name}'; it has {self.names}.")

    def to_dict(self, max_values: int = STORED_VALUES) -> dict[str, Any]:
        """A JSON-ready dict (see the module docstring for what a stored baseline keeps)."""
        if max_values < 2:
            raise InvalidInputError(f"max_values must be at least 2; got {max_values}.")
        return {
            "format": FORMAT,
            "rows": self.rows,
            "columns": [c.to_dict(max_values) for c in self.columns],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Baseline:
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise DataError(
                f"Not a drift baseline (expected format {FORMAT!r}); build one with "
                "modelyard.monitor.fit_baseline and store its to_dict()."
            )
        try:
            columns = tuple(ColumnBaseline.from_dict(c) for c in data["columns"])
            return cls(columns, int(data["rows"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"The stored drift baseline is damaged ({exc!r}); fit it again."
            ) from exc


class ReferenceColumns:
    """A reference's column baselines, one at a time: from a stored ``Baseline``, or fitted
    from data on demand (columns not in ``chosen`` may be skipped, see ``skip_reason``)."""

    def __init__(
        self,
        reference: Baseline | TableSource,
        chosen: Iterable[str] = (),
        categorical: Iterable[str] = (),
    ) -> None:
        self._chosen, self._categorical = set(chosen), set(categorical)
        if isinstance(reference, Baseline):
            self._baseline: Baseline | None = reference
            self.names, self.rows = reference.names, reference.rows
        else:
            table = open_table(reference, "the reference")
            self._baseline, self._read = None, table.column
            self.names, self.rows = list(table.names), table.rows

    def fit(self, name: str) -> ColumnBaseline | str:
        """The column's baseline, or why it is left out."""
        if self._baseline is not None:
            return self._baseline.column(name)
        array = self._read(name)
        reason = None if name in self._chosen else skip_reason(array, name)
        if reason is not None:
            return reason
        return fit_column(name, array, "categorical" if name in self._categorical else None)


def fit_baseline(
    reference: TableSource,
    columns: Sequence[str] | None = None,
    *,
    categorical: Iterable[str] = (),
) -> Baseline:
    """Fit the baseline of ``columns`` (default: every number and category column).

    ``categorical`` names numeric columns to treat as categories (codes, ids of a
    closed set). Without ``columns``, free-text columns (more than 1,000
    distinct values) and unsupported types (timestamps) are left out.
    """
    table = open_table(reference, "the reference")
    as_category = set(categorical)
    names = list(columns) if columns is not None else table.names
    fitted = []
    for name in names:
        array = table.column(name)
        if columns is None and skip_reason(array, name) is not None:
            continue
        fitted.append(fit_column(name, array, "categorical" if name in as_category else None))
    return Baseline(tuple(fitted), table.rows)


def fit_column(
    name: str, array: pa.ChunkedArray | pa.Array, kind: Kind | None = None
) -> ColumnBaseline:
    """The baseline of one reference column (``kind`` None: from its type)."""
    found: Kind = kind or ("numeric" if column_kind(array, name) == "numeric" else "categorical")
    if found == "categorical":
        labels = categorical_sample(array)
        bins = Bins("categories", np.empty(0), labels.categories)
        return ColumnBaseline(name, found, bins, bins.count(labels), labels.rows, labels.missing)
    numbers = numeric_sample(array)
    bins = numeric_bins(numbers)
    std = numbers.mean_std()[1] if numbers.present else None
    return ColumnBaseline(
        name, found, bins, bins.count(numbers), numbers.rows, numbers.missing, numbers, std
    )


def numeric_bins(sample: NumericSample) -> Bins:
    """Value bins for few distinct values, else the sample's deciles (see the module docstring)."""
    if len(sample.values) <= VALUE_BINS:
        return Bins("values", sample.values.copy())
    levels = np.linspace(0.0, 1.0, BINS + 1)[1:-1]
    return Bins("quantiles", np.unique(quantiles(sample, levels)))


def quantiles(sample: NumericSample, levels: np.ndarray) -> np.ndarray:
    """``numpy.quantile(values, levels)`` (linear method), from distinct values and counts."""
    ranks = levels * (sample.present - 1)
    below = np.floor(ranks).astype(np.int64)
    above = np.minimum(below + 1, sample.present - 1)
    low, high = _order_statistics(sample, below), _order_statistics(sample, above)
    t = ranks - below
    # numpy's lerp, which interpolates from the nearer end
    found: np.ndarray = np.where(t >= 0.5, high - (high - low) * (1 - t), low + (high - low) * t)
    return found


def summarise(sample: NumericSample, max_values: int) -> NumericSample:
    """``sample`` itself if it has at most ``max_values`` distinct values, else as many order
    statistics at evenly spaced ranks (repeats folded into counts)."""
    if len(sample.values) <= max_values:
        return sample
    ranks = np.rint(np.linspace(0, sample.present - 1, max_values)).astype(np.int64)
    picked = _order_statistics(sample, ranks)
    values, counts = np.unique(picked, return_counts=True)
    return NumericSample(values, None if len(values) == len(picked) else counts, 0)


def skip_reason(array: pa.ChunkedArray | pa.Array, name: str) -> str | None:
    """Why a column is left out when the columns are not named, or None to keep it.

    Left out: types drift is not measured on (timestamps, lists, ...) and free
    text (more than ``CATEGORY_LIMIT`` distinct values: ids, e-mails, notes).
    """
    try:
        kind = column_kind(array, name)
    except DataError:
        return f"{array.type} values"
    if kind == "categorical":
        distinct = len(pc.value_counts(array))
        if distinct > CATEGORY_LIMIT:
            return f"free text ({distinct:,} distinct values)"
    return None


def _short(value: float) -> str:
    """A number in at most 4 significant digits, thousands as k and millions as M."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= 10 * scale:
            return f"{value / scale:.4g}{suffix}"
    return f"{value:.4g}"


def _order_statistics(sample: NumericSample, ranks: np.ndarray) -> np.ndarray:
    """The values at 0-based ``ranks`` of the full sorted sample."""
    if sample.counts is not None:
        ranks = np.searchsorted(np.cumsum(sample.counts), ranks, side="right")
    found: np.ndarray = sample.values[ranks]
    return found
