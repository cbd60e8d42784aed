"""Checking data against a schema, batch by batch, in bounded memory.

    report = validate(frame_or_batches, schema)
    report.passed                        # no errors (warnings are allowed)
    for issue in report.issues:          # column, check, rows failing, example rows
        print(issue.message)

Checks, each an error unless marked:

    missing_column      a schema column is not in the data
    unexpected_column   a data column is not in the schema
    type                values of another type (text in a number column, 2.5 in an
                        integer column); the column's other checks are skipped
    null                a null (or NaN) in a column that is not nullable
    below_min/above_max a value outside the schema's range
    unknown_category    a value outside a category column's categories
    duplicate           a value repeating an earlier row in a unique column
    spelling (warning)  one value spelled several ways: "Paris", "paris ", "PARIS" are
                        equal after trimming, collapsing spaces and casefolding

Row numbers count data rows from 0 in reading order (as pandas numbers a
fresh frame; in a CSV file with a header row, line = row + 2). Each issue
keeps how many rows fail and the first ``EXAMPLES`` of them with their
values. Memory holds one batch plus, per column, the 64-bit keys of a unique
column (see ``modelyard.data.schema.KeySet``) and up to ``SPELLING_LIMIT``
distinct values of a text column.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from modelyard.data.schema import (
    ColumnSchema,
    KeySet,
    Schema,
    base_type,
    decoded,
    missing_mask,
    value_keys,
)

if TYPE_CHECKING:
    from modelyard.project import Project

Severity = Literal["error", "warning"]
Progress = Callable[[int, int], None]
Data: TypeAlias = "pd.DataFrame | pa.Table | pa.RecordBatch | Iterable[Any]"

EXAMPLES = 5
SPELLING_LIMIT = 10_000
BATCH_ROWS = 65_536
_NUMERIC = ("integer", "float")
_COMPATIBLE = {
    "integer": ("integer", "float"),  # floats pass when they are whole numbers
    "float": ("integer", "float"),
    "boolean": ("boolean",),
    "string": ("string",),
    "category": ("string",),
    "datetime": ("datetime",),
}


@dataclass(frozen=True)
class Issue:
    """One failed check on one column: how many rows fail, and the first few."""

    column: str | None
    check: str
    severity: Severity
    message: str
    rows: int
    examples: tuple[int, ...] = ()
    values: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "check": self.check,
            "severity": self.severity,
            "message": self.message,
            "rows": self.rows,
            "examples": list(self.examples),
            "values": list(self.values),
        }


@dataclass(frozen=True)
class ValidationReport:
    """Every issue found, errors first; ``passed`` when there is no error."""

    issues: tuple[Issue, ...]
    n_rows: int
    n_columns: int

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def passed(self) -> bool:
        return not self.errors

    def issue(self, column: str | None, check: str) -> Issue | None:
        """The issue of ``check`` on ``column``, if there is one."""
        for found in self.issues:
            if found.column == column and found.check == check:
                return found
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "n_rows": self.n_rows,
            "n_columns": self.n_columns,
            "issues": [i.to_dict() for i in self.issues],
        }


def validate(
    data: Data, schema: Schema, *, progress: Progress | None = None, total_rows: int = 0
) -> ValidationReport:
    """Check ``data`` (a frame, an Arrow table, or an iterable of batches) against ``schema``.

    ``progress(done_rows, total_rows)`` is called after each batch;
    ``total_rows`` is taken from a frame or table, else from the argument (0: unknown).
    """
    if isinstance(data, pd.DataFrame | pa.Table | pa.RecordBatch):
        total_rows = data.num_rows if not isinstance(data, pd.DataFrame) else len(data)
    checker = _Validator(schema)
    for batch in _batches(data):
        checker.feed(batch)
        if progress:
            progress(checker.offset, total_rows or checker.offset)
    return checker.report()


def validate_dataset(
    project: Project,
    ref: str,
    schema: Schema | None = None,
    *,
    progress: Progress | None = None,
) -> ValidationReport:
    """Check a registered version against ``schema`` (default: its own stored schema)."""
    from modelyard.data.datasets import get_version, iter_batches

    info = get_version(project, ref)
    batches = iter_batches(project, ref, BATCH_ROWS)
    return validate(batches, schema or info.schema, progress=progress, total_rows=info.n_rows)


def validate_file(
    path: str | Path,
    schema: Schema,
    *,
    delimiter: str | None = None,
    encoding: str = "utf-8",
    folder: Path | None = None,
    read_progress: Progress | None = None,
    check_progress: Progress | None = None,
) -> ValidationReport:
    """Check a CSV or Parquet file against ``schema`` without registering it.

    The file is first converted to a temporary Parquet file in ``folder``
    (bounded memory, the same reader as ``add_dataset``), then checked.
    """
    from modelyard.data.ingest import CsvOptions, read_batches, stage

    options = CsvOptions(delimiter=delimiter, encoding=encoding)
    with stage(path, folder=folder, options=options, progress=read_progress) as staged:
        batches = read_batches(staged.path, BATCH_ROWS)
        return validate(batches, schema, progress=check_progress, total_rows=staged.n_rows)


# ---------------------------------------------------------------------- the checker


@dataclass
class _Tally:
    """Failing rows of one check on one column: a count and the first few."""

    rows: int = 0
    examples: list[int] = field(default_factory=list)
    values: list[str] = field(default_factory=list)

    def add(self, positions: np.ndarray, array: pa.Array, offset: int) -> None:
        if len(positions) == 0:
            return
        self.rows += len(positions)
        room = EXAMPLES - len(self.examples)
        if room > 0:
            first = positions[:room]
            self.examples.extend(int(p) + offset for p in first)
            self.values.extend(_show(array[int(p)].as_py()) for p in first)


class _Validator:
    """Feeds batches through the checks of every column and builds the report."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.offset = 0
        self.tallies: dict[tuple[str | None, str], _Tally] = {}
        self.columns: dict[str, _ColumnChecks] = {}
        self.names: list[str] | None = None

    def feed(self, batch: pa.RecordBatch) -> None:
        if self.names is None:
            self._start(batch.schema.names)
        for name in batch.schema.names:
            checks = self.columns.get(name)
            if checks is not None:
                checks.feed(batch.column(name), self.offset, self._tally)
        self.offset += batch.num_rows

    def _start(self, names: list[str]) -> None:
        self.names = names
        for column in self.schema.columns:
            if column.name in names:
                self.columns[column.name] = _ColumnChecks(column)
            else:
                self._tally(column.name, "missing_column")
        for name in names:
            if name not in self.schema:
                self._tally(name, "unexpected_column")

    def _tally(self, column: str | None, check: str) -> _Tally:
        return self.tallies.setdefault((column, check), _Tally())

    def report(self) -> ValidationReport:
        found = (self._issue(col, check, t) for (col, check), t in self.tallies.items())
        issues = [i for i in found if i is not None]
        for checks in self.columns.values():
            issues.extend(checks.spelling_issues())
        order = {name: i for i, name in enumerate(self.schema.names + (self.names or []))}
        issues.sort(key=lambda i: (i.severity != "error", order.get(i.column or "", 0)))
        return ValidationReport(tuple(issues), self.offset, len(self.names or []))

    def _issue(self, column: str | None, check: str, tally: _Tally) -> Issue | None:
        if check in ("missing_column", "unexpected_column"):
            message = _COLUMN_MESSAGES[check].format(column)
            return Issue(column, check, "error", message, self.offset)
        if tally.rows == 0:
            return None
        spec = self.schema.column(column) if column and column in self.schema else None
        text = _describe(check, spec, self.columns.get(column or ""))
        shown = ", ".join(f"{r} ({v})" for r, v in zip(tally.examples, tally.values, strict=True))
        message = f"{tally.rows:,} row(s) {text}; first at row {shown}"
        return Issue(
            column, check, "error", message, tally.rows, tuple(tally.examples), tuple(tally.values)
        )


class _ColumnChecks:
    """The checks of one column, with what they carry from batch to batch."""

    def __init__(self, column: ColumnSchema) -> None:
        self.column = column
        self.found: str | None = None  # the data's type family, for messages
        self.keys = KeySet() if column.unique else None
        self.spellings: dict[str, list[int]] | None = (
            {} if column.type in ("string", "category") else None
        )

    def feed(
        self, array: pa.Array, offset: int, tally: Callable[[str | None, str], _Tally]
    ) -> None:
        array = decoded(array)
        if pa.types.is_null(array.type):
            array = array.cast(_ARROW.get(self.column.type, pa.string()))
        name = self.column.name
        missing = missing_mask(array)
        if not self.column.nullable:
            tally(name, "null").add(np.flatnonzero(missing), array, offset)
        family = base_type(array.type, name)
        if family not in _COMPATIBLE[self.column.type]:
            self.found = family
            tally(name, "type").add(np.flatnonzero(~missing), array, offset)
            return
        if self.column.type == "integer" and family == "float":
            whole = pc.equal(pc.floor(array), array).fill_null(True)
            bad = ~np.asarray(whole.to_numpy(zero_copy_only=False)) & ~missing
            tally(name, "type").add(np.flatnonzero(bad), array, offset)
            self.found = "float"
        self._range(array, offset, tally)
        self._categories(array, offset, tally)
        self._unique(array, offset, tally)
        self._spelling(array, offset)

    def _range(self, array: pa.Array, offset: int, tally: Callable[..., _Tally]) -> None:
        column = self.column
        if column.type not in (*_NUMERIC, "datetime"):
            return
        for bound, check, compare in (
            (column.min, "below_min", pc.less),
            (column.max, "above_max", pc.greater),
        ):
            if bound is None:
                continue
            values, scalar = _comparable(array, bound, column.type)
            failing = compare(values, scalar).fill_null(False)
            positions = np.flatnonzero(np.asarray(failing.to_numpy(zero_copy_only=False)))
            tally(column.name, check).add(positions, array, offset)

    def _categories(self, array: pa.Array, offset: int, tally: Callable[..., _Tally]) -> None:
        if self.column.type != "category" or self.column.categories is None:
            return
        known = pc.is_in(array, value_set=pa.array(self.column.categories, pa.string()))
        unknown = ~np.asarray(known.to_numpy(zero_copy_only=False)) & ~missing_mask(array)
        tally(self.column.name, "unknown_category").add(np.flatnonzero(unknown), array, offset)

    def _unique(self, array: pa.Array, offset: int, tally: Callable[..., _Tally]) -> None:
        if self.keys is None or self.keys.overflowed:
            return
        positions, keys = value_keys(array)
        repeats = positions[self.keys.add(keys)]
        tally(self.column.name, "duplicate").add(repeats, array, offset)

    def _spelling(self, array: pa.Array, offset: int) -> None:
        if self.spellings is None:
            return
        values = np.asarray(array.to_numpy(zero_copy_only=False), dtype=object)
        codes, uniques = pd.factorize(values)
        present = codes >= 0
        counts = np.bincount(codes[present], minlength=len(uniques))
        _, first = np.unique(codes, return_index=True)
        firsts = first[codes[first] >= 0]
        for code, position in zip(codes[firsts], firsts, strict=True):
            seen = self.spellings.get(uniques[code])
            if seen is None:
                self.spellings[uniques[code]] = [int(counts[code]), int(position) + offset]
            else:
                seen[0] += int(counts[code])
        if len(self.spellings) > SPELLING_LIMIT:
            self.spellings = None  # free text: too many values to compare

    def spelling_issues(self) -> list[Issue]:
        groups: dict[str, list[tuple[str, int, int]]] = {}
        for value, (count, first) in (self.spellings or {}).items():
            groups.setdefault(" ".join(value.split()).casefold(), []).append((value, count, first))
        issues = []
        for variants in groups.values():
            if len(variants) < 2:
                continue
            variants.sort(key=lambda v: (-v[1], v[2]))
            others = variants[1:]
            listed = ", ".join(f"{v!r} ({n:,} row{'s' * (n != 1)})" for v, n, _ in variants)
            message = (
                f"{variants[0][0]!r} is spelled {len(variants)} ways: {listed}. Normalise them "
                "(trim spaces, one case) in a cleaning step, or list each in the schema."
            )
            issues.append(
                Issue(
                    self.column.name,
                    "spelling",
                    "warning",
                    message,
                    sum(n for _, n, _ in others),
                    tuple(sorted(first for _, _, first in others))[:EXAMPLES],
                    tuple(v for v, _, _ in variants),
                )
            )
        return issues


_COLUMN_MESSAGES = {
    "missing_column": "column '{}' is in the schema but not in the data: add it to the data, "
    "or remove it from the schema",
    "unexpected_column": "column '{}' is in the data but not in the schema: drop it from the "
    "data, or add it to the schema",
}
_ARROW = {
    "integer": pa.int64(),
    "float": pa.float64(),
    "boolean": pa.bool_(),
    "datetime": pa.timestamp("us"),
}


def _describe(check: str, column: ColumnSchema | None, checks: _ColumnChecks | None) -> str:
    if column is None:
        return check
    found = checks.found if checks else None
    return {
        "type": f"hold {found or 'other'} values where {column.type} is expected"
        + (" (not whole numbers)" if column.type == "integer" and found == "float" else ""),
        "null": "are null but the column is not nullable",
        "below_min": f"are below the minimum {column.min}",
        "above_max": f"are above the maximum {column.max}",
        "unknown_category": f"hold a value outside the {len(column.categories or ())} categories",
        "duplicate": "repeat an earlier row's value but the column is unique",
    }.get(check, check)


def _scalar(bound: Any, arrow_type: pa.DataType) -> pa.Scalar:
    """A datetime bound (ISO text) as a scalar comparable with ``arrow_type``."""
    moment = pd.Timestamp(bound)
    zone = getattr(arrow_type, "tz", None)
    if zone:
        moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment
        moment = moment.tz_convert(zone)
    elif moment.tzinfo is not None:
        moment = moment.tz_localize(None)
    return pa.scalar(moment, type=pa.timestamp("us", tz=zone))


def _comparable(array: pa.Array, bound: Any, kind: str) -> tuple[pa.Array, pa.Scalar]:
    """``array`` and ``bound`` in types Arrow compares without a failing cast."""
    if kind == "datetime":
        values = array.cast(pa.timestamp("s")) if pa.types.is_date(array.type) else array
        return values, _scalar(bound, values.type)
    exact = isinstance(bound, int) and -(2**63) <= bound < 2**63
    if exact and pa.types.is_signed_integer(array.type):
        return array, pa.scalar(bound, pa.int64())
    # mixed int / float: compare as floats (a 2**53+ integer may round, never fail)
    return array.cast(pa.float64(), safe=False), pa.scalar(float(bound), pa.float64())


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _batches(data: Data) -> Iterator[pa.RecordBatch]:
    if isinstance(data, pd.DataFrame | pa.Table):
        yield from _table_batches(data)
    elif isinstance(data, pa.RecordBatch):
        yield data
    else:
        for item in data:
            if isinstance(item, pd.DataFrame | pa.Table):
                yield from _table_batches(item)
            else:
                yield item


def _table_batches(data: pd.DataFrame | pa.Table) -> list[pa.RecordBatch]:
    """A table's batches; an empty table still gives one (empty) batch with its columns."""
    table = _frame_table(data) if isinstance(data, pd.DataFrame) else data
    empty = pa.RecordBatch.from_pylist([], schema=table.schema)
    return table.to_batches(BATCH_ROWS) or [empty]


def _frame_table(frame: pd.DataFrame) -> pa.Table:
    """A frame as Arrow; a column mixing types becomes text, so its type check fails."""
    arrays, names = [], []
    for name in frame.columns:
        column = frame[name]
        try:
            arrays.append(pa.array(column, from_pandas=True))
        except (pa.ArrowException, TypeError, ValueError):
            text = column.map(lambda v: None if pd.isna(v) else str(v))
            arrays.append(pa.array(text, type=pa.string(), from_pandas=True))
        names.append(str(name))
    return pa.Table.from_arrays(arrays, names=names)
