"""Delayed labels: ground truth attached to logged predictions by request id and row.

    rows = parse_feedback(body)                      # POST /v1/feedback, validated
    log = FeedbackLog.for_project(project, "loans")  # once per server worker
    log.add(rows)                                    # buffered, never waits on disk
    add_feedback_file(project, "loans", "labels.csv")  # modelyard feedback add FILE
    read_feedback(project, "loans")                  # a pyarrow.Table, every label stored

Labels are stored as text, exactly as sent (a JSON number as its JSON text,
``true``/``false`` for booleans), with the moment they arrived, in
``<feedback_root>/<model>/date=YYYY-MM-DD/<worker>-<seq>.parquet``: the same
layout as the prediction log, so the same readers apply. Nothing is matched
at write time on the server (labels may even arrive before the prediction's
segment is flushed); a label sent twice is stored twice and the latest wins
when performance is measured (``monitor.performance``).
"""

from __future__ import annotations

import math
import os
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import csv

from modelyard.errors import DataError, InvalidInputError, ServingError
from modelyard.monitor.log_files import (
    apply_retention,
    feedback_root,
    model_folder,
    read_predictions,
)
from modelyard.monitor.segment_writer import SegmentWriter
from modelyard.spec import parse_duration

if TYPE_CHECKING:
    from modelyard.project import Project

__all__ = [
    "FEEDBACK",
    "FeedbackImport",
    "FeedbackLog",
    "FeedbackRow",
    "add_feedback_file",
    "parse_feedback",
    "read_feedback",
]

FEEDBACK = pa.schema(
    [
        ("request_id", pa.string()),
        ("row", pa.int32()),
        ("label", pa.string()),
        ("received_at", pa.timestamp("ms", tz="UTC")),
    ]
)
"""The columns of every feedback segment."""

MAX_ID_LENGTH = 256
MAX_LABEL_LENGTH = 1024
MAX_ROW = 2**31 - 1
MAX_DETAILS = 100
BATCH_ROWS = 65_536


class FeedbackRow(NamedTuple):
    """The true label of one scored row: ``row`` of the request ``request_id``."""

    request_id: str
    row: int
    label: str


# ---------------------------------------------------------------- the HTTP body


def parse_feedback(body: bytes) -> list[FeedbackRow]:
    """``{"feedback": [{"request_id": "…", "row": 0, "label": …}, …]}`` → its rows.

    ``row`` defaults to 0 (the first row of the request); ``label`` is a
    string, a number or a boolean. Every problem is reported at once, by item
    and field, without echoing a value sent (they may be personal data).
    """
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"The request body is not valid JSON: {exc}.") from None
    items = parsed.get("feedback") if isinstance(parsed, dict) else None
    if not isinstance(items, list) or not items:
        raise InvalidInputError(
            'The request body must be {"feedback": [{"request_id": "…", "row": 0, '
            '"label": …}, …]} with at least one item.',
            details=[{"item": None, "field": "feedback", "error": "expected a non-empty array"}],
        )
    rows: list[FeedbackRow] = []
    problems: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        row = _well_formed(item) or _item(i, item, problems)
        if row is not None:
            rows.append(row)
    if problems:
        first = problems[0]
        raise InvalidInputError(
            f"{len(problems)} problem(s) in the feedback; first at item {first['item']}, "
            f"field '{first['field']}': {first['error']}. Fix those items and send them again "
            "(none of this request was stored).",
            details=problems[:MAX_DETAILS],
        )
    return rows


def _well_formed(item: Any) -> FeedbackRow | None:
    """The common case, checked in one pass (a few hundred ns); None sends the item to
    ``_item``, which finds and names every problem."""
    if type(item) is not dict:
        return None
    request_id, row, label = item.get("request_id"), item.get("row", 0), item.get("label")
    if not (
        type(request_id) is str
        and 0 < len(request_id) <= MAX_ID_LENGTH
        and type(row) is int
        and 0 <= row <= MAX_ROW
    ):
        return None
    if type(label) is str:
        return FeedbackRow(request_id, row, label) if 0 < len(label) <= MAX_LABEL_LENGTH else None
    if type(label) is int:
        return FeedbackRow(request_id, row, str(label))
    if type(label) is bool or (type(label) is float and math.isfinite(label)):
        return FeedbackRow(request_id, row, label_text(label))
    return None


def _item(i: int, item: Any, problems: list[dict[str, Any]]) -> FeedbackRow | None:
    if type(item) is not dict:
        problems.append({"item": i, "field": None, "error": "expected an object"})
        return None
    errors = [
        (field, error)
        for field, error in (
            ("request_id", _id_error(item.get("request_id"))),
            ("row", _row_error(item.get("row", 0))),
            ("label", _label_error(item.get("label"))),
        )
        if error is not None
    ]
    problems.extend({"item": i, "field": field, "error": error} for field, error in errors)
    if errors:
        return None
    return FeedbackRow(item["request_id"], item.get("row", 0), label_text(item["label"]))


def _id_error(value: Any) -> str | None:
    if value is None:
        return "required"
    if type(value) is not str or not value:
        return "must be a non-empty string (the id the prediction was answered with)"
    if len(value) > MAX_ID_LENGTH:
        return f"longer than {MAX_ID_LENGTH} characters"
    return None


def _row_error(value: Any) -> str | None:
    if type(value) is not int or not 0 <= value <= MAX_ROW:
        return "must be a whole number ≥ 0: the row's index within its request"
    return None


def _label_error(value: Any) -> str | None:
    if value is None:
        return "required"
    if type(value) is float and not math.isfinite(value):
        return "must be a finite number"
    if type(value) not in (str, int, float, bool):
        return "must be a string, a number or a boolean"
    if type(value) is str and not 0 < len(value) <= MAX_LABEL_LENGTH:
        return f"must be a string of 1 to {MAX_LABEL_LENGTH} characters"
    return None


def label_text(value: str | int | float | bool) -> str:
    """How a label is stored: strings as sent, numbers and booleans as their JSON text."""
    return value if type(value) is str else orjson.dumps(value).decode()


# ---------------------------------------------------------------- the server's log


class FeedbackLog:
    """Buffers labels and writes them as feedback segments from a background thread."""

    def __init__(self, writer: SegmentWriter) -> None:
        self.writer = writer

    @classmethod
    def for_project(cls, project: Project, model: str, *, worker: str | None = None) -> FeedbackLog:
        """The feedback log of ``model``, flushed and kept as the spec's prediction log is.

        Partitions older than the spec's ``monitoring.log.retention`` are deleted here.
        """
        settings = project.spec.monitoring.log
        root = feedback_root(project)
        apply_retention(root, model, parse_duration(settings.retention))
        writer = SegmentWriter(
            model_folder(root, model),
            FEEDBACK,
            time_column="received_at",
            worker=worker,
            flush_rows=settings.flush_rows,
            flush_seconds=settings.flush_seconds,
            buffer_rows=settings.buffer_rows,
        )
        return cls(writer)

    def add(self, rows: Sequence[FeedbackRow]) -> int:
        """Buffer ``rows`` (all or none); their count. Costs O(rows), never waits on disk."""
        received = [time.time_ns() // 1_000_000] * len(rows)
        columns: dict[str, Sequence[Any]] = {
            "request_id": [r.request_id for r in rows],
            "row": [r.row for r in rows],
            "label": [r.label for r in rows],
            "received_at": received,
        }
        if not self.writer.append(columns):
            raise ServingError(
                "The feedback log is full (the disk is not keeping up) and these labels were "
                "not stored; send them again in a few seconds."
            )
        return len(rows)

    def flush(self) -> None:
        """Write what is buffered now."""
        self.writer.flush()

    def close(self) -> None:
        """Write what is buffered and stop the writer thread."""
        self.writer.close()


# ---------------------------------------------------------------- files (the CLI)


@dataclass(frozen=True)
class FeedbackImport:
    """What ``add_feedback_file`` stored: ``rows`` labels, ``unmatched`` of them for rows
    the prediction log does not hold (kept all the same: they count once it does)."""

    rows: int
    unmatched: int
    path: Path | None

    @property
    def matched(self) -> int:
        return self.rows - self.unmatched


def add_feedback_file(
    project: Project,
    model: str,
    path: str | os.PathLike[str],
    *,
    id_column: str = "request_id",
    row_column: str = "row",
    label_column: str = "label",
) -> FeedbackImport:
    """Store the labels of a CSV or Parquet file as one feedback segment, batch by batch.

    ``row_column`` may be absent from the file (every label is then for row
    0). A row without a request id or a label stops the import with nothing
    stored, naming the row. The segment appears whole or not at all.
    """
    source = Path(path)
    batches = _batches(source, {id_column: "request_id", row_column: "row", label_column: "label"})
    known = _logged_keys(project, model)
    received_ms = time.time_ns() // 1_000_000
    day = datetime.fromtimestamp(received_ms / 1000, UTC).date().isoformat()
    partition = model_folder(feedback_root(project), model) / f"date={day}"
    final = partition / f"import-{os.getpid()}-{secrets.token_hex(4)}-000001.parquet"
    temporary = partition / f".{final.name}.tmp"  # readers skip dot-files
    rows = unmatched = 0
    partition.mkdir(parents=True, exist_ok=True)
    try:
        with pq.ParquetWriter(temporary, FEEDBACK, compression="zstd") as writer:
            for batch in batches:
                table = _feedback_table(batch, source, rows, received_ms)
                writer.write_table(table)
                rows += table.num_rows
                unmatched += _count_unmatched(table, known)
        if rows:
            temporary.replace(final)
    finally:
        temporary.unlink(missing_ok=True)
    return FeedbackImport(rows, unmatched, final if rows else None)


def read_feedback(project: Project, model: str) -> pa.Table:
    """Every label stored for ``model`` (duplicates included), in the ``FEEDBACK`` schema."""
    table = read_predictions(feedback_root(project), model, columns=FEEDBACK.names)
    if table.num_rows == 0:
        return FEEDBACK.empty_table()
    return table.cast(FEEDBACK)


def row_keys(request_ids: pa.Array | pa.ChunkedArray, rows: pa.Array | pa.ChunkedArray) -> Any:
    """One text key per (request id, row) pair, for set membership and joins."""
    return pc.binary_join_element_wise(request_ids, pc.cast(rows, pa.string()), "\x1f")


def _logged_keys(project: Project, model: str) -> pa.Array:
    logged = read_predictions(project, model, columns=["request_id", "row"])
    keys = row_keys(logged.column("request_id"), logged.column("row"))
    return pa.concat_arrays(keys.chunks) if keys.num_chunks else pa.array([], pa.string())


def _count_unmatched(table: pa.Table, known: pa.Array) -> int:
    found = pc.is_in(row_keys(table.column("request_id"), table.column("row")), value_set=known)
    return int(table.num_rows) - int(pc.sum(found).as_py() or 0)


def _batches(source: Path, renames: dict[str, str]) -> Iterator[pa.RecordBatch]:
    """The file's batches, with only the wanted columns, renamed to the feedback names."""
    if not source.is_file():
        raise InvalidInputError(f"No file at {source}; give the path of a CSV or Parquet file.")
    parquet = _is_parquet(source)
    try:
        names = _column_names(source, parquet)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{source} cannot be read as CSV or Parquet: {exc}.") from None
    required = [name for name, to in renames.items() if to != "row"]
    missing = [name for name in required if name not in names]
    if missing:
        raise InvalidInputError(
            f"{source} has no column(s) {missing}; its columns are {names[:50]}. "
            "Name the right ones with --id-column and --label-column."
        )
    chosen = [name for name in renames if name in names]
    return _renamed(source, parquet, chosen, renames)


def _renamed(
    source: Path, parquet: bool, chosen: list[str], renames: dict[str, str]
) -> Iterator[pa.RecordBatch]:
    try:
        for batch in _read(source, parquet, chosen):
            yield batch.rename_columns([renames[name] for name in batch.schema.names])
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{source} cannot be read: {exc}.") from None


def _is_parquet(source: Path) -> bool:
    with source.open("rb") as handle:
        return handle.read(4) == b"PAR1"


def _column_names(source: Path, parquet: bool) -> list[str]:
    if parquet:
        return list(pq.read_schema(source).names)
    with csv.open_csv(source) as reader:
        return list(reader.schema.names)


def _read(source: Path, parquet: bool, columns: list[str]) -> Iterator[pa.RecordBatch]:
    if parquet:
        yield from pq.ParquetFile(source).iter_batches(batch_size=BATCH_ROWS, columns=columns)
        return
    options = csv.ConvertOptions(
        include_columns=columns,
        column_types={c: pa.string() for c in columns},
        strings_can_be_null=True,
    )
    with csv.open_csv(source, convert_options=options) as reader:
        yield from reader


def _feedback_table(batch: pa.RecordBatch, source: Path, before: int, received_ms: int) -> pa.Table:
    """One batch of the file in the ``FEEDBACK`` schema; refuses rows without an id or label."""
    ids, labels = _text(batch.column("request_id")), _text(batch.column("label"))
    for what, values in (("request id", ids), ("label", labels)):
        blank = pc.fill_null(pc.equal(pc.utf8_length(values), 0), True)
        if pc.any(blank).as_py():
            first = before + int(pc.index(blank, True).as_py()) + 1
            raise DataError(
                f"Data row {first} of {source} has no {what}; every row needs a request id "
                "and a label. Drop or fill such rows and run the import again (nothing was "
                "stored)."
            )
    n = batch.num_rows
    rows = _row_numbers(batch, source) if "row" in batch.schema.names else pa.nulls(n, pa.int32())
    received = pa.array(np.full(n, received_ms, dtype=np.int64)).cast(FEEDBACK.field(3).type)
    return pa.Table.from_arrays([ids, pc.fill_null(rows, 0), labels, received], schema=FEEDBACK)


def _text(values: pa.Array) -> pa.Array:
    """A column as text; booleans as ``true``/``false``, as JSON writes them."""
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    return values if pa.types.is_string(values.type) else values.cast(pa.string())


def _row_numbers(batch: pa.RecordBatch, source: Path) -> pa.Array:
    try:
        numbers = pc.cast(batch.column("row"), pa.int64())
    except pa.ArrowInvalid:
        numbers = None
    bad = (
        numbers is None or pc.any(pc.or_(pc.less(numbers, 0), pc.greater(numbers, MAX_ROW))).as_py()
    )
    if bad or numbers is None:
        raise DataError(
            f"Column 'row' of {source} must hold whole numbers ≥ 0 (each label's row within "
            "its request); leave a cell empty, or the column out, for row 0."
        )
    return numbers.cast(pa.int32())
