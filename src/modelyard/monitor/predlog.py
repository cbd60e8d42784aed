"""The prediction log: every answered row, as Parquet segments that pyarrow and DuckDB read.

    log = PredictionLog.for_project(project, "loans")   # None when the spec turns logging off
    app = InferenceApp(model, hooks=[log.record])        # the server calls it after each request
    ...
    log.close()                                          # flushes what is buffered
    read_predictions(project, "loans", since=yesterday)  # a pyarrow.Table

Layout (the contract every monitoring part reads)::

    <predictions_root>/<model>/date=YYYY-MM-DD/<worker>-<seq>.parquet

one row per scored row: ``request_id``, ``row``, ``ts`` (ms, UTC), ``model``,
``version``, ``latency_ms``, one column per model input (float64 numbers,
string categories; PII hashed or left out), then ``score``, ``label`` and
``confidence``. Each segment is written whole under a temporary name and
renamed, so a reader never sees half a file.

``record`` runs on the server's event loop, so for a tensor request it only
keeps references to what the server already made (the request's matrix, the
scores array) in a list; named values are picked out, and PII hashed, before
anything is buffered (about a µs a request). A daemon thread turns a whole
buffer into Arrow columns at once and writes Parquet (``SegmentWriter``).
When the disk cannot keep up the buffer fills, and further rows are dropped
and counted (``stats()``) rather than making a request wait. The feedback
log (labels arriving later) is written with the same ``SegmentWriter``.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import threading
import time
from array import array
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from modelyard.errors import DataError, InvalidInputError
from modelyard.monitor.pii import KeyedHasher, project_key
from modelyard.spec import PredictionLogSettings, parse_duration

if TYPE_CHECKING:
    from modelyard.project import Project

log = logging.getLogger("modelyard.monitor")

ENV_PREDICTIONS = "MODELYARD_PREDICTIONS"
DAY_MS = 86_400_000
TIMESTAMP = pa.timestamp("ms", tz="UTC")
HEAD = pa.schema(
    [
        ("request_id", pa.string()),
        ("row", pa.int32()),
        ("ts", TIMESTAMP),
        ("model", pa.string()),
        ("version", pa.int32()),
        ("latency_ms", pa.float32()),
    ]
)
OUTPUTS = pa.schema([("score", pa.float64()), ("label", pa.string()), ("confidence", pa.float64())])
FIXED = pa.schema([*HEAD, *OUTPUTS])
"""The columns every prediction log has, whatever the model's inputs."""


def predictions_root(project: Project) -> Path:
    """``$MODELYARD_PREDICTIONS``, or ``<project>/.modelyard/predictions``."""
    from modelyard.project import STATE_FOLDER

    override = os.environ.get(ENV_PREDICTIONS)
    return Path(override) if override else project.root / STATE_FOLDER / "predictions"


def feedback_root(project: Project) -> Path:
    """``<project>/.modelyard/feedback``: where labels for logged predictions are written."""
    from modelyard.project import STATE_FOLDER

    return project.root / STATE_FOLDER / "feedback"


def model_folder(root: str | os.PathLike[str], model: str) -> Path:
    """``root/model``, refusing a name that would leave ``root``."""
    if not model or model.startswith(".") or any(c in model for c in "/\\\0"):
        raise InvalidInputError(
            f"{model!r} cannot name a log folder; use the model's registered name."
        )
    return Path(root) / model


# ---------------------------------------------------------------- the writer


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
        with self._write_lock:
            try:
                self._write(self._table(buffer, rows))
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
        self._wake.set()
        self._thread.join()
        self.flush()

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
            arrays.append(_array(values, f.type))
            time.sleep(0)  # one column at a time: between them the event loop gets the GIL
        return pa.Table.from_arrays(arrays, schema=self.schema)

    # -- the thread and the files -----------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            closing = self._closed  # read after clear(): a close() racing us wakes us again
            self.flush()
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


def _array(values: Sequence[Any], kind: pa.DataType) -> pa.Array:
    try:
        return pa.array(values, type=kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        convert = _converter(kind)
        return pa.array([None if v is None else convert(v) for v in values], type=kind)


def _converter(kind: pa.DataType) -> Callable[[Any], Any]:
    if pa.types.is_string(kind):
        return str
    cast: Callable[[Any], Any] = float if pa.types.is_floating(kind) else int

    def convert(value: Any) -> Any:
        try:
            return cast(value)
        except (TypeError, ValueError, OverflowError):
            return None

    return convert


# ---------------------------------------------------------------- what the server hands over


class ScoredSignature(Protocol):
    @property
    def names(self) -> list[str]: ...
    @property
    def kinds(self) -> Mapping[str, str]: ...


class ScoredModel(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def signature(self) -> ScoredSignature: ...


class ScoredRows(Protocol):
    @property
    def n(self) -> int: ...
    @property
    def columns(self) -> Mapping[str, Sequence[Any]] | None: ...
    @property
    def records(self) -> list[Any] | None: ...
    @property
    def matrix(self) -> np.ndarray | None: ...


class ScoredPrediction(Protocol):
    @property
    def task(self) -> str: ...
    @property
    def scores(self) -> np.ndarray: ...
    @property
    def labels(self) -> list[Any] | None: ...


class ScoredRequest(Protocol):
    """What the log reads of ``modelyard.serve.app.Scored`` (the monitor never imports serve)."""

    @property
    def request_id(self) -> str | None: ...
    @property
    def model(self) -> ScoredModel: ...
    @property
    def rows(self) -> ScoredRows: ...
    @property
    def prediction(self) -> ScoredPrediction: ...
    @property
    def seconds(self) -> float: ...


# ---------------------------------------------------------------- the prediction log


class _Buffer:
    """One buffer of predictions, kept compact: numbers as raw float64 bytes, text in lists.

    Nothing of a request is kept alive once it is appended: no arrays, no
    lists of its values, only the bytes of its numbers and scores and its
    id, labels and text values. Holding on to each request's objects instead
    costs the server more (allocator and cache churn) than copying its bytes.
    """

    __slots__ = ("ids", "labels", "numbers", "scores", "seconds", "sizes", "texts", "ts")

    def __init__(self, texts: int) -> None:
        self.ids: list[str | None] = []  # per request
        self.sizes = array("q")  # rows per request
        self.ts = array("q")  # ns since the epoch, per request
        self.seconds = array("d")  # latency, per request
        self.numbers = bytearray()  # float64, one row of numeric inputs after another
        self.scores = bytearray()  # float64, one row of scores (1 or a value per class) each
        self.labels: list[Any] = []  # per row
        self.texts: list[list[Any]] = [[] for _ in range(texts)]  # per text input, per row


class _PredictionSegments(SegmentWriter):
    """The writer of one model version's predictions (see ``_Buffer``)."""

    def __init__(
        self,
        folder: Path,
        schema: pa.Schema,
        *,
        model: str,
        version: int,
        task: str,
        numeric: list[bool],
        **options: Any,
    ) -> None:
        self.model, self.version, self.task = model, version, task
        self._numeric = numeric  # per logged input, in schema order: a number, or text?
        self._width = sum(numeric)
        super().__init__(folder, schema, time_column="ts", **options)

    def add(
        self,
        request_id: str | None,
        n: int,
        numbers: Any,
        texts: Sequence[Any],
        scores: np.ndarray,
        labels: Sequence[Any] | None,
        ts_ns: int,
        seconds: float,
    ) -> bool:
        """Buffer one request of ``n`` rows. ``numbers``: its numeric inputs as float64 in
        row order, any buffer (an (n, k) C-ordered array, an ``array("d")``); ``texts`` one
        entry per text input, its value (one row) or its n values; ``scores`` the model's
        float64 (n,) or (n, classes) array; ``labels`` its n labels or None; ``ts_ns``
        when it was answered (``time.time_ns()``) and ``seconds`` how long that took."""
        with self._lock:
            if self._closed or self._rows + n > self.buffer_rows:
                self.dropped += n
                return False
            b = self._buffer
            b.numbers.extend(numbers)
            b.scores.extend(scores)
            b.ids.append(request_id)
            b.sizes.append(n)
            b.ts.append(ts_ns)
            b.seconds.append(seconds)
            if labels is None:
                b.labels.extend(repeat(None, n))
            else:
                b.labels.extend(labels)
            if n == 1:
                for column, value in zip(b.texts, texts, strict=True):
                    column.append(value)
            else:
                for column, values in zip(b.texts, texts, strict=True):
                    column.extend(values)
            self._rows += n
        self._wake_if_full()
        return True

    def add_batch(
        self,
        X: np.ndarray,
        scores: np.ndarray,
        labels: Sequence[Any] | None,
        requests: list[tuple[int, str | None, float]],
        ts_ns: int,
    ) -> None:
        """Buffer a scored batch of tensor requests whose inputs are ``X`` as is:
        ``requests`` holds each one's ``(rows, request_id, seconds)``, in ``X``'s order."""
        rows = len(X)
        X, scores = _contiguous(X), _contiguous(scores)
        with self._lock:
            if self._closed or self._rows + rows > self.buffer_rows:
                self.dropped += rows
                return
            b = self._buffer
            b.numbers.extend(X)
            b.scores.extend(scores)
            for n, request_id, seconds in requests:
                b.ids.append(request_id)
                b.sizes.append(n)
                b.ts.append(ts_ns)
                b.seconds.append(seconds)
            if labels is None:
                b.labels.extend(repeat(None, rows))
            else:
                b.labels.extend(labels)
            self._rows += rows
        self._wake_if_full()

    def _new_buffer(self) -> _Buffer:
        return _Buffer(len(self._numeric) - self._width)

    def _table(self, buffer: _Buffer, rows: int) -> pa.Table:
        requests = len(buffer.ids)
        one_each = rows == requests  # the usual case: a row per request
        sizes = np.frombuffer(buffer.sizes, np.int64) if not one_each else None

        def per_row(values: Any, kind: Any) -> np.ndarray:
            array_ = np.frombuffer(values, kind)
            return array_ if sizes is None else np.repeat(array_, sizes)

        positions = (
            np.zeros(rows, np.int32)
            if sizes is None
            else (np.arange(rows) - np.repeat(np.cumsum(sizes) - sizes, sizes)).astype(np.int32)
        )
        ids = buffer.ids if sizes is None else list(_repeated(buffer.ids, buffer.sizes))
        head = [
            pa.array(ids, pa.string()),
            pa.array(positions),
            pa.array(per_row(buffer.ts, np.int64) // 1_000_000).cast(TIMESTAMP),
            pa.array([self.model] * rows, pa.string()),
            pa.array(np.full(rows, self.version, np.int32)),
            pa.array(per_row(buffer.seconds, np.float64) * 1000.0, pa.float32()),
        ]
        block = np.frombuffer(buffer.numbers, np.float64).reshape(rows, self._width)
        inputs, number, text = [], 0, 0
        names = self.schema.names[len(HEAD) : len(self.schema) - len(OUTPUTS)]
        for numeric, f in zip(self._numeric, names, strict=True):
            if numeric:
                inputs.append(pa.array(block[:, number], from_pandas=True))  # NaN: missing
                number += 1
            else:
                inputs.append(_array(buffer.texts[text], self.schema.field(f).type))
                text += 1
        scores = np.frombuffer(buffer.scores, np.float64).reshape(rows, -1)
        score = scores.max(axis=1) if self.task == "multiclass" else scores[:, 0]
        if self.task == "regression":
            outputs = [pa.nulls(rows, pa.string()), pa.nulls(rows, pa.float64())]
        else:
            confidence = np.maximum(score, 1.0 - score) if self.task == "binary" else score
            outputs = [_text(buffer.labels), pa.array(confidence)]
        arrays = [*head, *inputs, pa.array(score), *outputs]
        return pa.Table.from_arrays(arrays, schema=self.schema)


def _repeated(values: Sequence[Any], sizes: Sequence[int]) -> Any:
    for value, n in zip(values, sizes, strict=True):
        yield from repeat(value, n)


def _floats(values: list[Any]) -> array[float]:
    """A row's numeric inputs as float64 (missing, or a value that is no number: NaN)."""
    try:
        return array("d", values)
    except TypeError:
        convert = _converter(pa.float64())
        return array("d", [NAN if (v := convert(x)) is None else v for x in values])


NAN = float("nan")
FLOAT64 = np.dtype(np.float64)
BatchTap = Callable[[np.ndarray, np.ndarray, list[tuple[int, Any]]], None]


def _contiguous(values: np.ndarray) -> np.ndarray:
    if values.dtype is FLOAT64 and values.flags.c_contiguous:
        return values
    return np.ascontiguousarray(values, np.float64)


def _text(values: Sequence[Any]) -> pa.Array:
    """Labels as text: binary 0/1 become "0"/"1", class names stay as they are."""
    try:
        array = pa.array(values)
        return array if pa.types.is_string(array.type) else array.cast(pa.string())
    except pa.ArrowException:
        return _array(values, pa.string())


class _Layout:
    """How one model version's requests become rows, and the writer they go to.

    ``names`` are the logged inputs in signature order (a dropped PII input is
    not among them); ``positions`` their places in the signature. Each is a
    number (buffered in the block) or text (a category, a hashed PII value).
    """

    def __init__(
        self,
        names: list[str],
        positions: list[int],
        numeric: list[bool],
        hashed: list[int],
        numbers: frozenset[int],
        writer: _PredictionSegments,
    ) -> None:
        self.names = names
        self.positions = positions
        self.numeric = numeric
        self.number_at = [i for i, is_number in enumerate(numeric) if is_number]
        self.text_at = [i for i, is_number in enumerate(numeric) if not is_number]
        self.hashed = hashed  # indices into ``names`` of the PII inputs to hash
        self.numbers = numbers  # indices of the inputs whose kind is number (hashed or not)
        # a numeric matrix whose every column is logged as a number goes to the block as is
        self.matrix_as_is = all(numeric) and positions == list(range(len(positions)))
        self.writer = writer


class PredictionLog:
    """Logs answered requests of one model; ``record`` is the server's prediction hook."""

    def __init__(
        self,
        folder: Path,
        settings: PredictionLogSettings,
        *,
        pii: Sequence[str] = (),
        key: bytes | None = None,
        worker: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if pii and settings.pii == "hash" and key is None:
            raise InvalidInputError("Hashing PII columns needs a key; pass project_key(project).")
        self.folder = folder
        self.settings = settings
        self.pii = frozenset(pii)
        self.worker = worker
        self._hash = KeyedHasher(key) if key is not None else None
        self._sample = (rng or random.Random()).random if settings.sample_rate < 1 else None
        self._layouts: dict[tuple[Any, ...], _Layout] = {}
        self._model: object = None
        self._layout: _Layout | None = None
        self._switch_lock = threading.Lock()
        self._failed = 0

    @classmethod
    def for_project(
        cls,
        project: Project,
        model_name: str,
        *,
        worker: str | None = None,
        rng: random.Random | None = None,
    ) -> PredictionLog | None:
        """The log the spec asks for (None when ``monitoring.log.enabled`` is false).

        Partitions older than the spec's ``retention`` are deleted here, once per worker start.
        """
        settings = project.spec.monitoring.log
        if not settings.enabled:
            return None
        pii = project.spec.columns.pii
        key = project_key(project) if pii and settings.pii == "hash" else None
        root = predictions_root(project)
        folder = model_folder(root, model_name)
        apply_retention(root, model_name, parse_duration(settings.retention))
        return cls(folder, settings, pii=pii, key=key, worker=worker, rng=rng)

    def record(self, scored: ScoredRequest) -> None:
        """Buffer one answered request (sampled per request); costs microseconds, never raises."""
        if self._sample is not None and self._sample() >= self.settings.sample_rate:
            return
        try:
            model = scored.model
            layout = self._layout
            if model is not self._model or layout is None:
                layout = self._switch(model, scored.prediction.task)
            self._record(scored, layout)
        except Exception:  # the request was answered; a logging bug must not turn it into a 500
            self._fail()

    def batch_tap(
        self,
        model: ScoredModel,
        task: str,
        labels_of: Callable[[np.ndarray], Sequence[Any] | None],
    ) -> BatchTap | None:
        """A tap for the server's batcher that logs the tagged tensor requests of each
        scored batch in one copy (``tag``: ``(request_id, perf_counter at arrival)``), or
        None when ``model``'s logged inputs are not its input matrix as is (a category
        input, or a PII input dropped or hashed): those requests go through ``record``.
        ``labels_of(scores)`` gives the labels the server answered for ``scores``."""
        layout = self._switch(model, task)
        if not layout.matrix_as_is:
            return None
        writer = layout.writer

        def tap(X: np.ndarray, scores: np.ndarray, requests: list[tuple[int, Any]]) -> None:
            try:
                self._tap(writer, labels_of, X, scores, requests)
            except Exception:  # the answers are out; a logging bug must not reach them
                self._fail()

        return tap

    def _tap(
        self,
        writer: _PredictionSegments,
        labels_of: Callable[[np.ndarray], Sequence[Any] | None],
        X: np.ndarray,
        scores: np.ndarray,
        requests: list[tuple[int, Any]],
    ) -> None:
        ts_ns, now = time.time_ns(), time.perf_counter()
        sample, rate = self._sample, self.settings.sample_rate
        if sample is not None or any(tag is None for _, tag in requests):
            keep = [tag is not None and (sample is None or sample() < rate) for _, tag in requests]
            if not any(keep):
                return
            rows = np.repeat(keep, [n for n, _ in requests])
            X, scores = X[rows], scores[rows]
            requests = [r for r, kept in zip(requests, keep, strict=True) if kept]
        chosen = [(n, request_id, now - arrived) for n, (request_id, arrived) in requests]
        writer.add_batch(X, scores, labels_of(scores), chosen, ts_ns)

    def _fail(self) -> None:
        self._failed += 1
        if self._failed == 1:
            log.exception("could not log a prediction of %s; such rows are dropped", self.folder)

    def close(self) -> None:
        """Write every buffered row and stop the writers."""
        for layout in list(self._layouts.values()):
            layout.writer.close()

    def stats(self) -> dict[str, int]:
        """Rows written and dropped, and segments written, since this log was opened."""
        totals = {"written": 0, "dropped": self._failed, "segments": 0}
        for layout in list(self._layouts.values()):
            for name, count in layout.writer.stats().items():
                totals[name] += count
        return totals

    def _record(self, scored: ScoredRequest, layout: _Layout) -> None:
        prediction, rows, n = scored.prediction, scored.rows, scored.rows.n
        matrix = rows.matrix
        numbers: Any
        texts: Sequence[Any]
        if layout.matrix_as_is and matrix is not None:  # a tensor request: its bytes as they are
            numbers = _contiguous(matrix)
            texts = ()
        elif n == 1:
            values = self._row(rows, layout)
            numbers = _floats([NAN if (v := values[i]) is None else v for i in layout.number_at])
            texts = [values[i] for i in layout.text_at]
        else:
            columns = self._columns(rows, layout)
            numbers = np.array(
                [[NAN if v is None else v for v in columns[i]] for i in layout.number_at],
                dtype=np.float64,
            ).T.copy()
            texts = [columns[i] for i in layout.text_at]
        scores = _contiguous(prediction.scores)
        layout.writer.add(
            scored.request_id,
            n,
            numbers,
            texts,
            scores,
            prediction.labels,
            time.time_ns(),
            scored.seconds,
        )

    def _row(self, rows: ScoredRows, layout: _Layout) -> list[Any]:
        """The logged inputs of a one-row request, PII hashed."""
        if rows.columns is not None:
            get = rows.columns.get
            values = [column[0] if (column := get(name)) else None for name in layout.names]
        elif rows.records is not None:
            record = rows.records[0]
            values = [record.get(name) for name in layout.names]
        else:
            assert rows.matrix is not None
            row: list[Any] = rows.matrix[0].tolist()
            values = [row[i] for i in layout.positions]
        if self._hash is not None:
            for i in layout.hashed:
                value = values[i]
                if i in layout.numbers and value is not None:
                    value = float(value)  # 2, 2.0 and a matrix's 2.0 must share a digest
                values[i] = self._hash.one(value)
        return values

    def _columns(self, rows: ScoredRows, layout: _Layout) -> list[Sequence[Any]]:
        """The logged inputs of a request of several rows, one sequence per input, PII hashed."""
        columns: list[Sequence[Any]]
        if rows.columns is not None:
            get, missing = rows.columns.get, [None] * rows.n
            columns = [get(name, missing) for name in layout.names]
        elif rows.records is not None:
            records = rows.records
            columns = [[record.get(name) for record in records] for name in layout.names]
        else:
            assert rows.matrix is not None
            by_position = rows.matrix.T.tolist()
            columns = [by_position[i] for i in layout.positions]
        if self._hash is not None:
            for i in layout.hashed:
                values = columns[i]
                if i in layout.numbers:
                    values = [None if v is None else float(v) for v in values]
                columns[i] = self._hash(values)
        return columns

    def _switch(self, model: ScoredModel, task: str) -> _Layout:
        """The layout of a model version not seen by the last call (first call, or a reload)."""
        signature = model.signature
        kinds = signature.kinds
        names = signature.names
        shape = (model.name, model.version, tuple(names), tuple(kinds.get(n) for n in names))
        with self._switch_lock:
            layout = self._layouts.get(shape)
            if layout is None:
                layout = self._layouts[shape] = self._new_layout(model, task)
            self._model, self._layout = model, layout
        return layout

    def _new_layout(self, model: ScoredModel, task: str) -> _Layout:
        kinds = model.signature.kinds
        dropped = self.pii if self.settings.pii == "drop" else frozenset()
        logged = [(i, n) for i, n in enumerate(model.signature.names) if n not in dropped]
        # a number is logged as a number unless it is hashed; categories and unknowns as text
        numeric = [kinds.get(n) == "number" and n not in self.pii for _, n in logged]
        fields = [
            pa.field(n, pa.float64() if is_number else pa.string())
            for (_, n), is_number in zip(logged, numeric, strict=True)
        ]
        s = self.settings
        writer = _PredictionSegments(
            self.folder,
            pa.schema([*HEAD, *fields, *OUTPUTS]),
            model=model.name,
            version=model.version,
            task=task,
            numeric=numeric,
            worker=self.worker,
            flush_rows=s.flush_rows,
            flush_seconds=s.flush_seconds,
            buffer_rows=s.buffer_rows,
        )
        return _Layout(
            names=[n for _, n in logged],
            positions=[i for i, _ in logged],
            numeric=numeric,
            hashed=[j for j, (_, n) in enumerate(logged) if n in self.pii],
            numbers=frozenset(j for j, (_, n) in enumerate(logged) if kinds.get(n) == "number"),
            writer=writer,
        )


# ---------------------------------------------------------------- reading and retention


def read_predictions(
    project_or_root: Project | str | os.PathLike[str],
    model: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    columns: Sequence[str] | None = None,
) -> pa.Table:
    """The logged rows of ``model`` with ``since <= ts < until`` (naive times are UTC).

    Segments written by different model versions may hold different inputs;
    a column a segment lacks reads as null. Rows come in no particular order.
    An empty or missing log gives an empty table with the fixed columns.
    """
    if isinstance(project_or_root, str | os.PathLike):
        root = Path(project_or_root)
    else:
        root = predictions_root(project_or_root)
    since, until = _utc(since), _utc(until)
    files = _segment_files(model_folder(root, model), since, until)
    if not files:
        return _empty(columns)
    schema = _unified_schema(files, model, root)
    missing = [c for c in columns or () if c not in schema.names]
    if missing:
        raise DataError(
            f"The prediction log of '{model}' has no column(s) {missing}; it has {schema.names}."
        )
    condition = None
    if since is not None:
        condition = ds.field("ts") >= pa.scalar(since, TIMESTAMP)
    if until is not None:
        before = ds.field("ts") < pa.scalar(until, TIMESTAMP)
        condition = before if condition is None else condition & before
    dataset = ds.dataset([str(f) for f in files], schema=schema, format="parquet")
    try:
        return dataset.to_table(columns=list(columns) if columns else None, filter=condition)
    except pa.ArrowException as exc:
        raise DataError(
            f"The prediction log of '{model}' in {root} cannot be read: {exc}."
        ) from None


def _unified_schema(files: list[Path], model: str, root: Path) -> pa.Schema:
    try:
        schemas = [pq.read_schema(f) for f in files]
    except (OSError, pa.ArrowException) as exc:
        raise DataError(
            f"A segment of the prediction log of '{model}' in {root} cannot be read ({exc}); "
            "move the damaged file away."
        ) from None
    try:
        return pa.unify_schemas(schemas)
    except pa.ArrowException as exc:
        raise DataError(
            f"The prediction log of '{model}' in {root} holds segments whose columns "
            f"disagree ({exc}); read a time range written by one model version."
        ) from None


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _segment_files(folder: Path, since: datetime | None, until: datetime | None) -> list[Path]:
    """The segments of the date partitions that can hold rows in ``[since, until)``."""
    first = since.astimezone(UTC).date() if since else date.min
    last = until.astimezone(UTC).date() if until else date.max
    files: list[Path] = []
    for day, partition in _partitions(folder):
        if first <= day <= last:
            files.extend(sorted(partition.glob("*.parquet")))
    return files


def _partitions(folder: Path) -> list[tuple[date, Path]]:
    if not folder.is_dir():
        return []
    found = []
    for partition in folder.glob("date=*"):
        try:
            found.append((date.fromisoformat(partition.name.removeprefix("date=")), partition))
        except ValueError:
            continue  # not ours
    return sorted(found)


def _empty(columns: Sequence[str] | None) -> pa.Table:
    names = list(columns) if columns else FIXED.names
    fields = [FIXED.field(n) if n in FIXED.names else pa.field(n, pa.null()) for n in names]
    return pa.schema(fields).empty_table()


def apply_retention(
    root: str | os.PathLike[str],
    model: str,
    retention_seconds: float,
    *,
    now: datetime | None = None,
) -> int:
    """Delete the date partitions whose whole day is older than the retention; files removed.

    Works on the prediction and the feedback log alike (both are
    ``root/model/date=…``). A day is kept while any moment of it is within
    ``retention_seconds`` of ``now``.
    """
    cutoff = (_utc(now) or datetime.now(UTC)) - timedelta(seconds=retention_seconds)
    removed = 0
    for day, partition in _partitions(model_folder(root, model)):
        day_end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        if day_end > cutoff:
            break  # partitions come in date order
        for file in partition.iterdir():
            try:
                file.unlink()
                removed += 1
            except FileNotFoundError:
                continue  # another worker removed it first
        try:
            partition.rmdir()
        except OSError:
            continue  # a file arrived meanwhile; the next run removes it
    return removed


__all__ = [
    "ENV_PREDICTIONS",
    "FIXED",
    "TIMESTAMP",
    "PredictionLog",
    "ScoredRequest",
    "SegmentWriter",
    "apply_retention",
    "feedback_root",
    "model_folder",
    "predictions_root",
    "read_predictions",
]
