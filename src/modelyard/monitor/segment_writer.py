"""Parquet segments written off the request path: the writer both logs share.

A bounded in-memory buffer, turned into a segment by a daemon thread once
``flush_rows`` rows are waiting or ``flush_seconds`` have passed, and written
under a temporary name then renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from modelyard.errors import InvalidInputError

log = logging.getLogger("modelyard.monitor")

DAY_MS = 86_400_000
MAX_TABLES_WAITING = 2


class SegmentWriter:
    """A bounded in-memory buffer of rows, written as Parquet segments by a daemon thread.

        writer = SegmentWriter(folder, schema, time_column="received_at")
        writer.append({"request_id": ["r1"], "row": [0], "label": ["1"],
                       "received_at": [time.time_ns() // 1_000_000]})
        writer.close()   # writes what is left and stops the thread

    ``append`` takes one sequence per schema column, all of one length; the
    ``time_column`` (a timestamp in the schema) as integer milliseconds since
    the epoch, UTC, never null: it picks each row's ``date=YYYY-MM-DD``
    partition. It costs O(rows), never waits on disk, and returns False when
    it dropped the rows because ``buffer_rows`` are already waiting (or the
    writer is closed). Values are converted to the schema's types on the
    writer's thread; one that cannot be (text in a number column) becomes null.

    A segment is written once ``flush_rows`` rows are buffered, or
    ``flush_seconds`` after the previous one, to
    ``folder/date=…/<worker>-<seq>.parquet`` through a temporary name and a
    rename. ``written``, ``dropped`` and ``segments`` count rows and files.

    The buffer is one flat list per column: it keeps the values and nothing
    of the request around them, so the garbage collector has little to walk.
    A subclass may buffer differently (``_new_buffer``, ``_table``).
    """

    def __init__(
        self,
        folder: Path,
        schema: pa.Schema,
        *,
        time_column: str,
        worker: str | None = None,
        flush_rows: int = 10_000,
        flush_seconds: float = 5.0,
        buffer_rows: int = 200_000,
    ) -> None:
        if time_column not in schema.names:
            raise InvalidInputError(f"time_column {time_column!r} is not in the schema.")
        self.folder = folder
        self.schema = schema
        self.time_column = time_column
        self.worker = worker or f"{os.getpid()}-{secrets.token_hex(3)}"
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.buffer_rows = buffer_rows
        self.written = 0
        self.dropped = 0
        self.segments = 0
        self._names = tuple(schema.names)
        self._name_set = frozenset(self._names)
        self._buffer: Any = self._new_buffer()
        self._rows = 0
        self._seq = 0
        self._closed = False
        self._lock = threading.Lock()  # held only to add rows or to swap the buffer out
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._tables: list[pa.Table] = []  # whole tables waiting for the thread (write_later)
        self._room = threading.Condition(self._lock)
        self._thread = threading.Thread(
            target=self._run, name=f"modelyard-log-{folder.name}", daemon=True
        )
        self._thread.start()

    @property
    def buffered(self) -> int:
        return self._rows

    def append(self, columns: Mapping[str, Sequence[Any]]) -> bool:
        """Buffer the rows in ``columns``; False (and counted) when they were dropped."""
        n = len(columns.get(self.time_column) or ())
        same_names = tuple(columns) == self._names or columns.keys() == self._name_set
        if not same_names or set(map(len, columns.values())) != {n}:
            raise InvalidInputError(
                f"append() needs the columns {list(self._names)}, each with as many values "
                f"as the others; got { ({k: len(v) for k, v in columns.items()}) }."
            )
        with self._lock:
            if not self._reserve(n):
                return False
            for values, name in zip(self._buffer, self._names, strict=True):
                values.extend(columns[name])
        self._wake_if_full()
        return True

    def flush(self) -> None:
        """Write what is buffered now, in the calling thread."""
        with self._lock:
            if not self._rows:
                return
            buffer, rows = self._buffer, self._rows
            self._buffer = self._new_buffer()
            self._rows = 0
        self._write_counted(lambda: self._table(buffer, rows), rows)

    def write_later(self, table: pa.Table) -> None:
        """Hand a table of the schema's columns to the writer's thread (a batch job's rows),
        waiting while ``MAX_TABLES_WAITING`` are queued: the job goes on scoring while its
        last rows are written, in bounded memory. ``close()`` writes what is queued."""
        if table.schema != self.schema:
            raise InvalidInputError(
                f"write_later() needs the schema {self.schema}; got {table.schema}."
            )
        if not table.num_rows:
            return
        with self._room:
            while len(self._tables) >= MAX_TABLES_WAITING and not self._closed:
                self._room.wait()
            if self._closed:
                self.dropped += table.num_rows
                return
            self._tables.append(table)
        self._wake.set()

    def _write_tables(self) -> None:
        while True:
            with self._room:
                if not self._tables:
                    return
                table = self._tables[0]
            self._write_counted(functools.partial(_as_is, table), table.num_rows)
            with self._room:
                self._tables.pop(0)
                self._room.notify_all()

    def _write_counted(self, table: Callable[[], pa.Table], rows: int) -> None:
        with self._write_lock:
            try:
                self._write(table())
            except Exception:  # a full or read-only disk must not stop the server
                log.exception("could not write %d logged rows to %s; dropped", rows, self.folder)
                with self._lock:
                    self.dropped += rows
            else:
                self.written += rows

    def close(self) -> None:
        """Write what is left and stop the thread (later appends are dropped)."""
        with self._lock:
            self._closed = True
        with self._room:
            self._room.notify_all()  # a write_later() waiting for room gives up
        self._wake.set()
        self._thread.join()
        self.flush()
        self._write_tables()

    def stats(self) -> dict[str, int]:
        return {"written": self.written, "dropped": self.dropped, "segments": self.segments}

    # -- for subclasses -------------------------------------------------------------

    def _new_buffer(self) -> Any:
        return [[] for _ in self.schema.names]

    def _reserve(self, n: int) -> bool:
        """Room for ``n`` more rows? (Counts them as buffered, or as dropped.) Hold the lock."""
        if self._closed or self._rows + n > self.buffer_rows:
            self.dropped += n
            return False
        self._rows += n
        return True

    def _wake_if_full(self) -> None:
        if self._rows >= self.flush_rows:
            self._wake.set()

    def _table(self, buffer: Any, rows: int) -> pa.Table:
        arrays = []
        for values, f in zip(buffer, self.schema, strict=True):
            arrays.append(arrow_array(values, f.type))
            time.sleep(0)  # one column at a time: between them the event loop gets the GIL
        return pa.Table.from_arrays(arrays, schema=self.schema)

    # -- the thread and the files -----------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            closing = self._closed  # read after clear(): a close() racing us wakes us again
            self.flush()
            self._write_tables()
            if closing:
                return

    def _write(self, table: pa.Table) -> None:
        times = table.column(self.time_column).cast(pa.int64()).to_numpy()
        days = times // DAY_MS
        first = int(days[0])
        if (days == first).all():
            self._write_segment(table, first)
            return
        for day in np.unique(days).tolist():
            self._write_segment(table.take(np.flatnonzero(days == day)), day)

    def _write_segment(self, table: pa.Table, day: int) -> None:
        partition = self.folder / f"date={date.fromordinal(EPOCH_ORDINAL + day).isoformat()}"
        partition.mkdir(parents=True, exist_ok=True)
        while True:  # a restarted worker given the same name must not overwrite its files
            self._seq += 1
            final = partition / f"{self.worker}-{self._seq:06d}.parquet"
            if not final.exists():
                break
        temporary = partition / f".{final.name}.tmp"  # readers skip dot-files
        # Dictionaries pay off for repeated text (ids, labels), not for measured numbers;
        # floats split into byte streams compress better and faster (a third less of both).
        text = [f.name for f in self.schema if pa.types.is_string(f.type)]
        floats = [f.name for f in self.schema if pa.types.is_floating(f.type)]
        pq.write_table(
            table,
            temporary,
            compression="zstd",
            use_dictionary=text,
            use_byte_stream_split=floats,
        )
        temporary.replace(final)
        self.segments += 1


EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _as_is(table: pa.Table) -> pa.Table:
    return table


def arrow_array(values: Sequence[Any], kind: pa.DataType) -> pa.Array:
    try:
        return pa.array(values, type=kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        convert = value_converter(kind)
        return pa.array([None if v is None else convert(v) for v in values], type=kind)


def value_converter(kind: pa.DataType) -> Callable[[Any], Any]:
    if pa.types.is_string(kind):
        return str
    cast: Callable[[Any], Any] = float if pa.types.is_floating(kind) else int

    def convert(value: Any) -> Any:
        try:
            return cast(value)
        except (TypeError, ValueError, OverflowError):
            return None

    return convert


__all__ = ["SegmentWriter", "arrow_array", "value_converter"]
