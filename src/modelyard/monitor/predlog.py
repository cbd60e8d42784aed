"""The prediction log: every answered row, as Parquet segments that pyarrow and DuckDB read.

    log = PredictionLog.for_project(project, "loans")   # None when the spec turns logging off
    app = InferenceApp(model, prediction_log=log)        # the server feeds it every answer
    ...
    log.close()                                          # flushes what is buffered
    read_predictions(project, "loans", since=yesterday)  # log_files: a pyarrow.Table

Layout (the contract every monitoring part reads; ``log_files`` reads it)::

    <predictions_root>/<model>/date=YYYY-MM-DD/<worker>-<seq>.parquet

one row per scored row: ``request_id``, ``row``, ``ts`` (ms, UTC), ``model``,
``version``, ``latency_ms``, one column per model input (float64 numbers,
string categories; PII hashed or left out), then ``score``, ``label`` and
``confidence``. Each segment is written whole under a temporary name and
renamed, so a reader never sees half a file.

The log costs the server little because the request path copies bytes and
nothing else. A model whose logged inputs are its input matrix as is (all
numbers, nothing dropped or hashed) gets its tensor requests through the
batcher's tap (``batch_tap``): one copy of each scored batch, its matrix and
scores, plus each request's id and latency. Other requests go through
``record``: named values are picked out, and PII hashed, before anything is
buffered. A daemon thread turns a whole buffer into Arrow columns at once and
writes Parquet (``prediction_buffer``, ``segment_writer``). When the disk
cannot keep up the buffer fills, and further rows are dropped and counted
(``stats()``) rather than making a request wait. The feedback log (labels
arriving later) is written with the same ``SegmentWriter``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modelyard.errors import InvalidInputError
from modelyard.monitor.log_files import (
    HEAD,
    OUTPUTS,
    apply_retention,
    model_folder,
    predictions_root,
)
from modelyard.monitor.pii import KeyedHasher, project_key
from modelyard.monitor.prediction_buffer import (
    NAN,
    BatchTap,
    PredictionSegments,
    contiguous,
    floats,
)
from modelyard.monitor.segment_writer import arrow_array, value_converter
from modelyard.spec import PredictionLogSettings, parse_duration

if TYPE_CHECKING:
    from pathlib import Path

    from modelyard.project import Project

log = logging.getLogger("modelyard.monitor")


class ScoredSignature(Protocol):
    @property
    def names(self) -> list[str]: ...
    @property
    def kinds(self) -> Mapping[str, str]: ...


class ScoredBundle(Protocol):
    def labels(self, scores: np.ndarray) -> np.ndarray | None: ...


class ScoredModel(Protocol):
    @property
    def bundle(self) -> ScoredBundle: ...
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
        writer: PredictionSegments,
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

    def batch_tap(self, model: ScoredModel, task: str) -> BatchTap | None:
        """A tap for the server's batcher that logs the tagged tensor requests of each
        scored batch in one copy (``tag``: ``(request_id, perf_counter at arrival)``), or
        None when ``model``'s logged inputs are not its input matrix as is (a category
        input, or a PII input dropped or hashed): those requests go through ``record``."""
        layout = self._switch(model, task)
        if not layout.matrix_as_is:
            return None
        writer = layout.writer

        def tap(X: np.ndarray, scores: np.ndarray, requests: list[tuple[int, Any]]) -> None:
            try:
                self._tap(writer, X, scores, requests)
            except Exception:  # the answers are out; a logging bug must not reach them
                self._fail()

        return tap

    def _tap(
        self,
        writer: PredictionSegments,
        X: np.ndarray,
        scores: np.ndarray,
        requests: list[tuple[int, Any]],
    ) -> None:
        ts_ns, now = time.time_ns(), time.perf_counter()
        sample, rate = self._sample, self.settings.sample_rate
        if sample is None and len(requests) == 1:  # one request alone: nothing to pick
            n, tag = requests[0]
            if tag is not None:
                writer.add_batch(X, scores, [(n, tag[0], now - tag[1])], ts_ns)
            return
        if sample is not None or any(tag is None for _, tag in requests):
            keep = [tag is not None and (sample is None or sample() < rate) for _, tag in requests]
            if not any(keep):
                return
            rows = np.repeat(keep, [n for n, _ in requests])
            X, scores = X[rows], scores[rows]
            requests = [r for r, kept in zip(requests, keep, strict=True) if kept]
        chosen = [(n, request_id, now - arrived) for n, (request_id, arrived) in requests]
        writer.add_batch(X, scores, chosen, ts_ns)

    def log_scored(
        self, model: ScoredModel, task: str, inputs: pa.Table, scores: np.ndarray, request_id: str
    ) -> None:
        """Log rows scored outside the server (``modelyard predict``), written by the log's
        thread while the job goes on: ``inputs`` the scored rows' input columns, ``scores``
        their scores. They are one request (``row``: their order in it) with no latency;
        sampling and PII as online. Arrow columns go to the segment as they are."""
        layout = self._switch(model, task)
        if self._sample is not None:
            rate = self.settings.sample_rate
            keep = np.fromiter((self._sample() < rate for _ in range(inputs.num_rows)), bool)
            inputs, scores = inputs.filter(pa.array(keep)), scores[keep]
        n = inputs.num_rows
        if n == 0:
            return
        writer = layout.writer
        head = writer.head(
            [request_id] * n, np.arange(n), np.full(n, time.time_ns()), np.full(n, NAN)
        )
        columns = [self._logged_column(inputs, layout, i) for i in range(len(layout.names))]
        outputs = writer.outputs(contiguous(scores).reshape(n, -1))
        writer.write_later(pa.Table.from_arrays([*head, *columns, *outputs], schema=writer.schema))

    def _logged_column(self, inputs: pa.Table, layout: _Layout, i: int) -> pa.ChunkedArray:
        """Input ``i`` of the layout from a batch's Arrow columns: a float64 number, or text
        (a category, or a PII value hashed)."""
        column = inputs.column(layout.names[i])
        if layout.numeric[i]:
            return pa.chunked_array([_floats_of(column)], pa.float64())
        values = column.to_pylist()
        if self._hash is not None and i in layout.hashed:
            if i in layout.numbers:
                values = [None if v is None else float(v) for v in values]
            values = self._hash(values)
        return pa.chunked_array([arrow_array(values, pa.string())], pa.string())

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
            numbers = contiguous(matrix)
            texts = ()
        elif n == 1:
            values = self._row(rows, layout)
            numbers = floats([NAN if (v := values[i]) is None else v for i in layout.number_at])
            texts = [values[i] for i in layout.text_at]
        else:
            columns = self._columns(rows, layout)
            numbers = np.array(
                [[NAN if v is None else v for v in columns[i]] for i in layout.number_at],
                dtype=np.float64,
            ).T.copy()
            texts = [columns[i] for i in layout.text_at]
        scores = contiguous(prediction.scores)
        layout.writer.add(
            scored.request_id,
            n,
            numbers,
            texts,
            scores,
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
        writer = PredictionSegments(
            self.folder,
            pa.schema([*HEAD, *fields, *OUTPUTS]),
            model=model.name,
            version=model.version,
            task=task,
            numeric=numeric,
            labels_of=model.bundle.labels,
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


def _floats_of(column: pa.ChunkedArray) -> pa.Array:
    """A numeric input column as float64, missing as NaN (text that is no number too)."""
    try:
        values = pc.cast(column, pa.float64())
    except pa.ArrowException:
        convert = value_converter(pa.float64())
        values = pa.array([convert(v) for v in column.to_pylist()], pa.float64())
    # NaN, however it came, is a missing value in the log
    return pa.array(values.to_numpy(zero_copy_only=False), pa.float64(), from_pandas=True)


__all__ = ["PredictionLog", "ScoredRequest"]
