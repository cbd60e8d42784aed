"""Where a search's folds run: in this process, or as tasks on a Ray cluster.

The search driver hands an engine one fold at a time (``submit``) and takes
back whichever finishes first (``next_done``); it keeps the Optuna study and
writes every run itself, so an engine only computes ``CVJob.run_fold``. Workers
never touch the metadata database.

    LocalEngine   one slot: each fold runs in the driver when it is collected
    RayEngine     one slot per cluster CPU: folds run as Ray tasks; the job
                  (rows, folds, family) is put in the object store once

A fold that raises comes back as an ``error`` string, never as an exception,
so one broken trial cannot stop the search. Ray is an extra
(``pip install 'modelyard[ray]'``) and is imported only by ``RayEngine``; on
a cluster (``RAY_ADDRESS``), its workers need the same modelyard installed,
since a fold calls the family's ``fit`` by reference.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from modelyard.errors import TrainingError
from modelyard.ray_cluster import ray_session
from modelyard.train.crossval import CVJob


@dataclass(frozen=True)
class FoldTask:
    """Fold ``fold`` of the trial ``key`` with ``params``."""

    key: int
    fold: int
    params: dict[str, Any]


@dataclass(frozen=True)
class FoldOutcome:
    """A fold's score, or the error that stopped it, and the seconds it took to compute."""

    key: int
    fold: int
    score: float | None
    error: str | None
    seconds: float


class Engine(Protocol):
    """Runs folds of one ``CVJob``; ``slots`` folds may be in flight at once."""

    slots: int
    threads_per_task: int | None

    def submit(self, task: FoldTask) -> None: ...

    def next_done(self) -> FoldOutcome: ...


def run_fold(job: CVJob, task: FoldTask) -> FoldOutcome:
    """Compute one fold; an exception becomes the outcome's ``error``."""
    started = time.perf_counter()
    try:
        value = job.run_fold(task.params, task.fold)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        return FoldOutcome(task.key, task.fold, None, error, time.perf_counter() - started)
    return FoldOutcome(task.key, task.fold, value, None, time.perf_counter() - started)


class LocalEngine:
    """Folds run one at a time, in this process."""

    slots = 1
    threads_per_task: int | None = None

    def __init__(self, job: CVJob) -> None:
        self.job = job
        self._queue: deque[FoldTask] = deque()

    def submit(self, task: FoldTask) -> None:
        self._queue.append(task)

    def next_done(self) -> FoldOutcome:
        return run_fold(self.job, self._queue.popleft())


class RayEngine:
    """Folds run as Ray tasks of one CPU each, as many at once as the cluster has CPUs.

    Each task runs single-threaded (``OMP_NUM_THREADS=1``; the driver sets a
    family's ``num_threads`` to 1), so N tasks on N cores do not oversubscribe.
    """

    threads_per_task: int | None = 1

    def __init__(self, job: CVJob, ray: Any) -> None:
        self._ray = ray
        self._job = ray.put(job)
        self._remote = ray.remote(num_cpus=1, max_retries=0)(_fold_in_worker)
        self._running: dict[Any, FoldTask] = {}
        self.slots = max(1, int(ray.cluster_resources().get("CPU", 1)))

    def submit(self, task: FoldTask) -> None:
        self._running[self._remote.remote(self._job, task)] = task

    def next_done(self) -> FoldOutcome:
        [ref], _ = self._ray.wait(list(self._running), num_returns=1)
        task = self._running.pop(ref)
        try:
            outcome: FoldOutcome = self._ray.get(ref)
        except Exception as exc:  # the worker died, or Ray lost the task
            error = f"{type(exc).__name__}: {exc}"[:2000]
            return FoldOutcome(task.key, task.fold, None, error, 0.0)
        return outcome

    def cancel(self) -> None:
        for ref in self._running:
            self._ray.cancel(ref, force=True)
        self._running.clear()


def _fold_in_worker(job: CVJob, task: FoldTask) -> FoldOutcome:
    os.environ["OMP_NUM_THREADS"] = "1"
    return run_fold(job, task)


@contextmanager
def open_engine(name: str, job: CVJob) -> Iterator[Engine]:
    """The engine called ``name`` ("local" or "ray") for ``job``, shut down afterwards."""
    if name == "local":
        yield LocalEngine(job)
    elif name == "ray":
        with ray_session(TrainingError, "search with engine='local'") as ray:
            engine = RayEngine(job, ray)
            try:
                yield engine
            finally:
                engine.cancel()
    else:
        raise TrainingError(f"Unknown search engine {name!r}; use 'local' or 'ray'.")
