"""Adaptive batching, counted in rows: merge what is already queued, never wait when idle.

A request's encoded rows are queued with a future. The first request to find
the batcher idle leads: it yields one turn of the event loop, so every
request that arrived in the same turn — while the model was busy with the
previous batch, the requests piled up in the socket buffers — joins its
queue, then scores them all in one ``predict`` call and splits the answers
back by row offsets. An idle server therefore adds no wait: a lone request is
scored on the very next loop turn. (A fixed window does: MLServer's
2 ms window cut its single-connection throughput six-fold on this kind of
model.)

A ``tap`` sees each scored batch whole — its matrix, its scores and each
request's rows and tag — after the requests have their answers: the
prediction log copies a batch of tensor requests in one go this way,
instead of request by request.

For heavy models ``max_wait`` (seconds) lets a batch fill up; the deadline is
fixed by the first queued request, and a batch that reaches
``max_batch_rows`` is flushed at once. The queue is bounded: past
``max_queue_rows`` a request is refused with ``Overloaded`` (HTTP 503 with
``Retry-After``) instead of making everyone wait longer.

``predict`` runs on the event loop's thread: each worker process owns one
core, and for tree models a hop to a thread pool costs more than the call.
Run more workers for more cores.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from modelyard.errors import ServingError


class Overloaded(ServingError):
    """The batch queue is full: answer 503 and ask the client to retry."""

    http_status = 503
    retry_after_seconds = 1


Observer = Callable[[int], None]
Tap = Callable[[np.ndarray, np.ndarray, list[tuple[int, Any]]], None]
"""``tap(X, scores, [(rows, tag), ...])``: a scored batch and, per request in it, its row
count and the tag it was queued with (None when untagged)."""

log = logging.getLogger("modelyard.serve")


class Batcher:
    """Queues encoded rows and scores them in merged ``predict`` calls."""

    def __init__(
        self,
        predict: Callable[[np.ndarray], np.ndarray],
        *,
        max_batch_rows: int = 1024,
        max_wait: float = 0.0,
        max_queue_rows: int = 65_536,
        on_batch: Observer | None = None,
        tap: Tap | None = None,
    ) -> None:
        self.predict = predict
        self.max_batch_rows = max_batch_rows
        self.max_wait = max_wait
        self.max_queue_rows = max_queue_rows
        self.on_batch = on_batch
        self.tap = tap
        self.queued_rows = 0
        self._pending: list[tuple[np.ndarray, asyncio.Future[np.ndarray], Any]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._soon = False
        self._leading = False

    async def score(self, X: np.ndarray, tag: Any = None) -> np.ndarray:
        """The scores of ``X``'s rows, computed in a batch with whatever else is queued;
        ``tag`` goes to the ``tap`` with them."""
        rows = len(X)
        if self.queued_rows and self.queued_rows + rows > self.max_queue_rows:
            raise Overloaded(
                f"The server is at capacity ({self.queued_rows} rows queued); retry shortly."
            )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._pending.append((X, future, tag))
        self.queued_rows += rows
        if self.max_wait <= 0 and not self._leading:
            return await self._lead(future)
        if self.queued_rows >= self.max_batch_rows:
            self._flush_soon(loop)
        elif self._timer is None and not self._leading:  # the first request fixes the deadline
            self._timer = loop.call_later(self.max_wait, self._flush)
        return await future

    async def _lead(self, future: asyncio.Future[np.ndarray]) -> np.ndarray:
        """Yield one loop turn so that requests already read join this one, then score
        them all here: the leader needs no wake-up of its own, its followers one each."""
        self._leading = True
        try:
            await asyncio.sleep(0)
        finally:
            self._leading = False
            self._flush()
        return future.result()

    def _flush_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._soon:
            self._soon = True
            loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._soon = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, rows = self._take()
        if not batch:
            return
        if self._pending:  # more than one batch's worth was queued: go again next turn
            self._flush_soon(asyncio.get_running_loop())
        try:
            X = batch[0][0] if len(batch) == 1 else np.concatenate([x for x, _, _ in batch])
            scores = self.predict(X)
        except Exception as exc:  # every waiting request gets the failure
            for _, future, _ in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        if self.on_batch is not None:
            self.on_batch(rows)
        start = 0
        for x, future, _ in batch:
            end = start + len(x)
            if not future.done():  # a client that went away cancelled its future
                future.set_result(scores[start:end])
            start = end
        if self.tap is not None:
            try:
                self.tap(X, scores, [(len(x), tag) for x, _, tag in batch])
            except Exception:  # the answers are out; a tap's failure must not reach them
                log.exception("a batch tap failed; its requests are answered all the same")

    def _take(self) -> tuple[list[tuple[np.ndarray, asyncio.Future[Any], Any]], int]:
        """Queued requests up to ``max_batch_rows`` (a larger request goes alone)."""
        taken, rows = 0, 0
        for x, _, _ in self._pending:
            if taken and rows + len(x) > self.max_batch_rows:
                break
            taken += 1
            rows += len(x)
        batch, self._pending = self._pending[:taken], self._pending[taken:]
        self.queued_rows -= rows
        return batch, rows
