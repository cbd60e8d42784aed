"""The prediction log's writer: compact per-request buffers, converted a buffer at a time."""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable, Sequence
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from modelyard.monitor.log_files import HEAD, OUTPUTS, TIMESTAMP
from modelyard.monitor.segment_writer import SegmentWriter, arrow_array, value_converter


class PredictionBuffer:
    """One buffer of predictions, kept compact: numbers as raw float64 bytes, text in lists.

    Nothing of a request is kept alive once it is appended: no arrays, no
    lists of its values, only the bytes of its numbers and scores and its
    id and text values (labels follow from the scores: ``labels_of``, on the
    writer's thread, a buffer at a time). Holding on to each request's objects instead
    costs the server more (allocator and cache churn) than copying its bytes.
    """

    __slots__ = ("ids", "numbers", "scores", "seconds", "sizes", "texts", "ts")

    def __init__(self, texts: int) -> None:
        self.ids: list[str | None] = []  # per request
        self.sizes = array("q")  # rows per request
        self.ts = array("q")  # ns since the epoch, per request
        self.seconds = array("d")  # latency, per request
        self.numbers = bytearray()  # float64, one row of numeric inputs after another
        self.scores = bytearray()  # float64, one row of scores (1 or a value per class) each
        self.texts: list[list[Any]] = [[] for _ in range(texts)]  # per text input, per row


class PredictionSegments(SegmentWriter):
    """The writer of one model version's predictions (see ``PredictionBuffer``)."""

    def __init__(
        self,
        folder: Path,
        schema: pa.Schema,
        *,
        model: str,
        version: int,
        task: str,
        numeric: list[bool],
        labels_of: Callable[[np.ndarray], np.ndarray | None],
        **options: Any,
    ) -> None:
        self.model, self.version, self.task = model, version, task
        self._labels_of = labels_of  # scores → the labels the server answered
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
        ts_ns: int,
        seconds: float,
    ) -> bool:
        """Buffer one request of ``n`` rows. ``numbers``: its numeric inputs as float64 in
        row order, any buffer (an (n, k) C-ordered array, an ``array("d")``); ``texts`` one
        entry per text input, its value (one row) or its n values; ``scores`` the model's
        float64 (n,) or (n, classes) array; ``ts_ns`` when it was answered
        (``time.time_ns()``) and ``seconds`` how long that took."""
        with self._lock:
            if not self._reserve(n):
                return False
            b = self._buffer
            b.numbers.extend(numbers)
            b.scores.extend(scores)
            b.ids.append(request_id)
            b.sizes.append(n)
            b.ts.append(ts_ns)
            b.seconds.append(seconds)
            if n == 1:
                for column, value in zip(b.texts, texts, strict=True):
                    column.append(value)
            else:
                for column, values in zip(b.texts, texts, strict=True):
                    column.extend(values)
        self._wake_if_full()
        return True

    def add_batch(
        self,
        X: np.ndarray,
        scores: np.ndarray,
        requests: list[tuple[int, str | None, float]],
        ts_ns: int,
    ) -> None:
        """Buffer a scored batch of tensor requests whose inputs are ``X`` as is:
        ``requests`` holds each one's ``(rows, request_id, seconds)``, in ``X``'s order."""
        rows = len(X)
        X, scores = contiguous(X), contiguous(scores)
        with self._lock:
            if not self._reserve(rows):
                return
            b = self._buffer
            b.numbers.extend(X)
            b.scores.extend(scores)
            for n, request_id, seconds in requests:
                b.ids.append(request_id)
                b.sizes.append(n)
                b.ts.append(ts_ns)
                b.seconds.append(seconds)
        self._wake_if_full()

    def _new_buffer(self) -> PredictionBuffer:
        return PredictionBuffer(len(self._numeric) - self._width)

    def _table(self, buffer: PredictionBuffer, rows: int) -> pa.Table:
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
        head = self.head(
            ids, positions, per_row(buffer.ts, np.int64), per_row(buffer.seconds, np.float64)
        )
        block = np.frombuffer(buffer.numbers, np.float64).reshape(rows, self._width)
        inputs, number, text = [], 0, 0
        names = self.schema.names[len(HEAD) : len(self.schema) - len(OUTPUTS)]
        for numeric, f in zip(self._numeric, names, strict=True):
            if numeric:
                inputs.append(pa.array(block[:, number], from_pandas=True))  # NaN: missing
                number += 1
            else:
                inputs.append(arrow_array(buffer.texts[text], self.schema.field(f).type))
                text += 1
            time.sleep(0)  # one column at a time: between them the event loop gets the GIL
        scores = np.frombuffer(buffer.scores, np.float64).reshape(rows, -1)
        arrays = [*head, *inputs, *self.outputs(scores)]
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def head(
        self,
        ids: Sequence[str | None],
        positions: np.ndarray,
        ts_ns: np.ndarray,
        seconds: np.ndarray,
    ) -> list[pa.Array]:
        """The ``HEAD`` columns, one value per row: request id, row in the request, time
        (ns since the epoch), this writer's model and version, latency (NaN: none)."""
        rows = len(ids)
        return [
            pa.array(ids, pa.string()),
            pa.array(positions, pa.int32()),
            pa.array(ts_ns // 1_000_000).cast(TIMESTAMP),
            pa.array([self.model] * rows, pa.string()),
            pa.array(np.full(rows, self.version, np.int32)),
            pa.array(seconds * 1000.0, pa.float32(), from_pandas=True),
        ]

    def outputs(self, scores: np.ndarray) -> list[pa.Array]:
        """``score``, ``label`` and ``confidence`` of (rows, 1 or classes) float64 scores."""
        rows = len(scores)
        score = scores.max(axis=1) if self.task == "multiclass" else scores[:, 0]
        if self.task == "regression":
            return [pa.array(score), pa.nulls(rows, pa.string()), pa.nulls(rows, pa.float64())]
        confidence = np.maximum(score, 1.0 - score) if self.task == "binary" else score
        labels = self._labels_of(scores if self.task == "multiclass" else score)
        return [pa.array(score), _text(labels), pa.array(confidence)]


def _repeated(values: Sequence[Any], sizes: Sequence[int]) -> Any:
    for value, n in zip(values, sizes, strict=True):
        yield from repeat(value, n)


def floats(values: list[Any]) -> array[float]:
    """A row's numeric inputs as float64 (missing, or a value that is no number: NaN)."""
    try:
        return array("d", values)
    except TypeError:
        convert = value_converter(pa.float64())
        return array("d", [NAN if (v := convert(x)) is None else v for x in values])


NAN = float("nan")
FLOAT64 = np.dtype(np.float64)
BatchTap = Callable[[np.ndarray, np.ndarray, list[tuple[int, Any]]], None]


def contiguous(values: np.ndarray) -> np.ndarray:
    if values.dtype is FLOAT64 and values.flags.c_contiguous:
        return values
    return np.ascontiguousarray(values, np.float64)


def _text(values: np.ndarray | None) -> pa.Array:
    """Labels as text: binary 0/1 become "0"/"1", class names stay as they are."""
    if values is None:
        raise ValueError("a classifier's bundle gave no labels")
    try:
        array = pa.array(values)
        return array if pa.types.is_string(array.type) else array.cast(pa.string())
    except pa.ArrowException:
        return arrow_array(values.tolist(), pa.string())


__all__ = ["BatchTap", "PredictionBuffer", "PredictionSegments", "contiguous", "floats"]
