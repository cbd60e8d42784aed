"""One column of data as the drift statistics see it: distinct values and their counts.

    table = open_table(frame_or_arrow_table_or_parquet_path)
    column = table.column("income")                      # a pyarrow ChunkedArray
    numbers = numeric_sample(column)                     # sorted distinct values, counts, missing
    labels = categorical_sample(table.column("purpose")) # each category's count, missing

A ``NumericSample`` holds the column's finite values, sorted and without
repeats, with the number of rows holding each (``counts``; None when every
value occurs once). Null, NaN and ±inf count as missing, as everywhere in the
monitor. Building it costs one hash pass when values repeat (money rounded to
cents, integers, codes: Arrow's ``value_counts``) or one sort when they do not;
which of the two is chosen from an evenly spaced probe of ``PROBE`` values
(it changes the speed, never the result).

A ``CategoricalSample`` holds each category's count, the categories as text
(booleans become ``"true"`` / ``"false"``), sorted.

``open_table`` reads a Parquet file one column at a time, so memory holds one
column, not the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from modelyard.data.schema import decoded
from modelyard.errors import DataError

__all__ = [
    "PROBE",
    "CategoricalSample",
    "NumericSample",
    "TableSource",
    "categorical_sample",
    "column_kind",
    "numeric_sample",
    "open_table",
]

#: Values looked at to choose between hashing and sorting a numeric column.
PROBE = 16_384
#: Share of distinct values in the probe above which sorting beats hashing.
_HASH_LIMIT = 0.5

TableSource: TypeAlias = pd.DataFrame | pa.Table | str | Path


@dataclass(frozen=True)
class NumericSample:
    """A numeric column's distinct finite values (ascending), their counts, and its missing."""

    values: np.ndarray
    counts: np.ndarray | None
    missing: int

    @property
    def present(self) -> int:
        """Rows with a finite value."""
        return len(self.values) if self.counts is None else int(self.counts.sum())

    @property
    def rows(self) -> int:
        return self.present + self.missing

    def mean_std(self) -> tuple[float, float]:
        """Mean and population standard deviation (ddof 0) of the present values."""
        if self.present == 0:
            return float("nan"), float("nan")
        if self.counts is None:
            return float(np.mean(self.values)), float(np.std(self.values))
        mean = float(np.dot(self.values, self.counts) / self.present)
        deviations = self.values - mean
        return mean, float(np.sqrt(np.dot(deviations * deviations, self.counts) / self.present))


@dataclass(frozen=True)
class CategoricalSample:
    """A categorical column's categories (sorted text), their counts, and its missing."""

    categories: tuple[str, ...]
    counts: np.ndarray
    missing: int

    @property
    def present(self) -> int:
        return int(self.counts.sum())

    @property
    def rows(self) -> int:
        return self.present + self.missing


class ColumnTable(Protocol):
    """Where the columns come from: read one at a time."""

    names: list[str]
    rows: int

    def column(self, name: str) -> pa.ChunkedArray: ...


def open_table(data: TableSource, what: str = "the data") -> ColumnTable:
    """A column reader over a DataFrame, an Arrow table or a Parquet file (one column at a time)."""
    if isinstance(data, pd.DataFrame):
        return _FrameTable(data, what)
    if isinstance(data, pa.Table):
        return _ArrowTable(data, what)
    if isinstance(data, str | Path):
        return _ParquetTable(Path(data), what)
    raise DataError(
        f"{what} must be a pandas DataFrame, a pyarrow Table or a Parquet path; "
        f"got {type(data).__name__}."
    )


def column_kind(array: pa.ChunkedArray | pa.Array, name: str) -> str:
    """``numeric`` (integers, floats, decimals) or ``categorical`` (text, booleans)."""
    kind = array.type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return "numeric"
    if pa.types.is_boolean(kind) or _is_text(kind) or pa.types.is_null(kind):
        return "categorical"
    raise DataError(
        f"Column '{name}' holds {kind} values; drift is measured on numbers and categories. "
        "Leave it out of the columns (a timestamp can be the time column of drift windows)."
    )


def numeric_sample(array: pa.ChunkedArray | pa.Array) -> NumericSample:
    """The distinct finite values of a numeric column, sorted, with their counts."""
    values = _floats(array)
    finite = values[np.isfinite(values)]
    missing = len(values) - len(finite)
    if len(finite) == 0:
        return NumericSample(np.empty(0), None, missing)
    if _repeats(finite):
        found = pc.value_counts(pa.array(finite))
        distinct = np.asarray(found.field(0).to_numpy(zero_copy_only=False), dtype=np.float64)
        counts = np.asarray(found.field(1).to_numpy(zero_copy_only=False), dtype=np.int64)
        order = np.argsort(distinct, kind="stable")
        distinct, counts = distinct[order], counts[order]
        distinct, counts = _fold_zeros(distinct, counts)  # -0.0 and 0.0 hash apart
        return NumericSample(distinct, counts, missing)
    finite.sort()
    if not np.any(finite[1:] == finite[:-1]):
        return NumericSample(finite, None, missing)
    starts = np.flatnonzero(np.concatenate([[True], finite[1:] != finite[:-1]]))
    counts = np.diff(np.append(starts, len(finite))).astype(np.int64)
    return NumericSample(finite[starts], counts, missing)


def categorical_sample(array: pa.ChunkedArray | pa.Array) -> CategoricalSample:
    """Each category's count (categories as text, sorted) and the missing count."""
    if pa.types.is_null(array.type):
        return CategoricalSample((), np.empty(0, dtype=np.int64), len(array))
    # Dictionary-encoded columns are counted on their codes, without decoding them.
    found = pc.value_counts(array)
    values, counts = found.field(0), found.field(1)
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    present = values.is_valid()
    values, counts = values.filter(present), counts.filter(present)
    if not _is_text(values.type):
        values = values.cast(pa.string())
    names = values.to_pylist()
    counted = np.asarray(counts.to_numpy(zero_copy_only=False), dtype=np.int64)
    order = np.argsort(np.asarray(names, dtype=object), kind="stable")
    return CategoricalSample(tuple(names[i] for i in order), counted[order], array.null_count)


# ---------------------------------------------------------------------- helpers


def _floats(array: pa.ChunkedArray | pa.Array) -> np.ndarray:
    plain = decoded(array)
    if not pa.types.is_float64(plain.type):
        plain = plain.cast(pa.float64())
    return np.asarray(plain.to_numpy(zero_copy_only=False), dtype=np.float64)


def _repeats(values: np.ndarray) -> bool:
    """Whether values repeat enough for a hash count to beat a sort (judged on a probe)."""
    step = max(len(values) // PROBE, 1)
    probe = values[::step]
    return len(np.unique(probe)) <= _HASH_LIMIT * len(probe)


def _fold_zeros(values: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    zeros = values == 0.0
    if zeros.sum() < 2:
        return values, counts
    first = int(np.argmax(zeros))
    merged = counts.copy()
    merged[first] = counts[zeros].sum()
    keep = ~zeros
    keep[first] = True
    values = values.copy()
    values[first] = 0.0
    return values[keep], merged[keep]


def _is_text(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)
    )


class _FrameTable:
    def __init__(self, frame: pd.DataFrame, what: str) -> None:
        self._frame, self._what = frame, what
        self.names = [str(c) for c in frame.columns]
        self.rows = len(frame)

    def column(self, name: str) -> pa.ChunkedArray:
        _check(name, self.names, self._what)
        series = self._frame[name]
        try:
            return pa.chunked_array([pa.array(series, from_pandas=True)])
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise DataError(
                f"Column '{name}' of {self._what} mixes value types ({exc}); give it one type "
                "(numbers, or text for categories)."
            ) from exc


class _ArrowTable:
    def __init__(self, table: pa.Table, what: str) -> None:
        self._table, self._what = table, what
        self.names = list(table.column_names)
        self.rows = table.num_rows

    def column(self, name: str) -> pa.ChunkedArray:
        _check(name, self.names, self._what)
        return self._table.column(name)


class _ParquetTable:
    def __init__(self, path: Path, what: str) -> None:
        try:
            metadata = pq.read_metadata(path)
            schema = pq.read_schema(path)
            self.names = list(schema.names)
            self._text = {f.name for f in schema if _is_text(f.type)}
        except (OSError, pa.ArrowException) as exc:
            raise DataError(
                f"Cannot read {what} from {path}: {exc}. Give the path of a Parquet file."
            ) from exc
        self._path, self._what = path, what
        self.rows = metadata.num_rows

    def column(self, name: str) -> pa.ChunkedArray:
        _check(name, self.names, self._what)
        text = name in self._text  # read text as dictionaries: far cheaper to count
        try:
            return pq.read_table(
                self._path, columns=[name], read_dictionary=[name] if text else None
            ).column(0)
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"Cannot read column '{name}' of {self._path}: {exc}.") from exc


def _check(name: str, names: list[str], what: str) -> None:
    if name not in names:
        shown = ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
        raise DataError(f"{what} has no column '{name}'; its columns are: {shown}.")
