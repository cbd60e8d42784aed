"""Runs: the complete record of one piece of training work.

``Run`` gathers parameters, metrics (step-wise, with timestamps), tags,
artifacts and input dataset versions in memory and writes them in **one
transaction** when the run ends, together with the spec hash, code version,
environment, seed and timings — so logging 10,000 metrics costs one commit of
bulk inserts, and a run that is killed midway leaves nothing half-written::

    with Run(project, name="lightgbm", seed=7) as run:
        run.log_params({"learning_rate": 0.05})
        for step in range(100):
            run.log_metric("valid_auc", auc, step)
        run.log_batch(metrics=[("loss", 0.3, 99)], tags={"note": "baseline"})
    # finished (or "failed" with the error as a tag, or "killed" on Ctrl-C)

Reading back: ``list_runs`` (summaries with the latest value of each metric),
``get_run`` (the full ``RunRecord``: history of every metric, artifacts,
inputs, environment, code version, children) and ``metric_history``. Run ids
may be given by a unique prefix.
"""

from __future__ import annotations

import math
import operator
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from modelyard.errors import ConflictError, InvalidInputError, NotFoundError
from modelyard.project import Project
from modelyard.store import Blob, new_id, tables, utcnow
from modelyard.train.environment import code_version, environment

KEY_LENGTH = 250
CODE_VERSION_TTL_SECONDS = 10.0
"""How long a project's git commit and dirty flag are reused by later runs of the process."""

_TABLES = tables.Base.metadata.tables


class Metric(NamedTuple):
    """One logged value: a metric ``key`` at ``step``, logged at ``timestamp`` (UTC)."""

    key: str
    value: float
    step: int
    timestamp: datetime


class MetricPoint(NamedTuple):
    """One point of a metric's history, as read back."""

    step: int
    value: float
    timestamp: datetime


MetricRecord = tuple[str, float, int] | tuple[str, float, int, datetime]
"""What ``log_batch`` takes: ``(key, value, step)`` or ``(key, value, step, timestamp)``."""


@dataclass
class Run:
    """A run being recorded; use as a context manager, or call ``finish()``."""

    project: Project
    name: str
    kind: str = "train"
    seed: int | None = None
    parent_id: str | None = None
    id: str = field(default_factory=new_id)
    params: dict[str, str] = field(default_factory=dict)
    metrics: list[Metric] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, Blob] = field(default_factory=dict)
    inputs: list[tuple[str, str]] = field(default_factory=list)
    split: dict[str, Any] | None = None
    _started: datetime = field(default_factory=utcnow)
    _wall: float = field(default_factory=time.perf_counter)
    _cpu: float = field(default_factory=time.process_time)
    _finished: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 200:
            raise InvalidInputError(
                f"A run name must have 1 to 200 characters; got {len(self.name)}: {self.name!r:.60}"
            )
        if not self.kind or len(self.kind) > 32:
            raise InvalidInputError(f"A run kind must have 1 to 32 characters; got {self.kind!r}.")

    # ------------------------------------------------------------------ logging

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record parameters (stored as text; logging a key again replaces it)."""
        self._check_open()
        self.params.update(_texts(params, "parameter"))

    def log_metric(
        self, key: str, value: float, step: int = 0, timestamp: datetime | None = None
    ) -> None:
        """Record one value of metric ``key`` at ``step`` (the time defaults to now)."""
        self._check_open()
        self.metrics.append(_metric(key, value, step, timestamp or utcnow()))

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        """Record several metrics at one step and one timestamp."""
        self._check_open()
        now = utcnow()
        self.metrics.extend([_metric(k, v, step, now) for k, v in metrics.items()])

    def log_batch(
        self,
        metrics: Iterable[MetricRecord] = (),
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        """Record many metrics (``(key, value, step[, timestamp])``), params and tags at once.

        The batch is checked whole before any of it is kept.
        """
        self._check_open()
        now = utcnow()
        batch = [_metric(m[0], m[1], m[2], m[3] if len(m) > 3 else now) for m in metrics]
        new_params = _texts(params or {}, "parameter")
        new_tags = _texts(tags or {}, "tag")
        self.metrics.extend(batch)
        self.params.update(new_params)
        self.tags.update(new_tags)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set free-form tags (stored as text; setting a key again replaces it)."""
        self._check_open()
        self.tags.update(_texts(tags, "tag"))

    def log_artifact(self, name: str, blob: Blob) -> None:
        """Record a blob already in the project's artifact store under ``name``."""
        self._check_open()
        self.artifacts[name] = blob

    def add_input(self, dataset_version_id: str, role: str) -> None:
        """Record a dataset version the run read, in a ``role`` (train, validation, test, …)."""
        self._check_open()
        self.inputs.append((dataset_version_id, role))

    # ------------------------------------------------------------------ writing

    def finish(self, status: str = "finished") -> None:
        """Write the whole run in one transaction of bulk inserts."""
        if status not in tables.RUN_STATUSES or status == "running":
            raise InvalidInputError(
                f"A run finishes as 'finished', 'failed' or 'killed', not {status!r}."
            )
        self._check_open()
        run_row = self._row(status)
        children = self._child_rows()
        with self.project.db.write() as session:
            session.execute(insert(_TABLES["runs"]), [run_row])
            for table, rows in children:
                if rows:
                    session.execute(insert(_TABLES[table]), rows)
        self._finished = True

    def _row(self, status: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "project_id": self.project.id,
            "parent_run_id": self.parent_id,
            "name": self.name,
            "kind": self.kind,
            "status": status,
            "spec_hash": self.project.spec_hash,
            "code_version": _code_version(self.project.root),
            "environment": _environment(),
            "seed": self.seed,
            "split": self.split,
            "started_at": self._started,
            "ended_at": utcnow(),
            "wall_seconds": time.perf_counter() - self._wall,
            "cpu_seconds": time.process_time() - self._cpu,
        }

    def _child_rows(self) -> list[tuple[str, list[dict[str, Any]]]]:
        run_id = self.id
        return [
            (
                "run_params",
                [{"run_id": run_id, "key": k, "value": v} for k, v in self.params.items()],
            ),
            (
                "run_metrics",
                [
                    {"run_id": run_id, "key": k, "value": v, "step": s, "timestamp": t}
                    for k, v, s, t in self.metrics
                ],
            ),
            ("run_tags", [{"run_id": run_id, "key": k, "value": v} for k, v in self.tags.items()]),
            (
                "run_artifacts",
                [
                    {"run_id": run_id, "name": n, "digest": b.digest, "size": b.size}
                    for n, b in self.artifacts.items()
                ],
            ),
            (
                "run_inputs",
                [
                    {"run_id": run_id, "dataset_version_id": d, "role": r}
                    for d, r in dict.fromkeys(self.inputs)
                ],
            ),
        ]

    def _check_open(self) -> None:
        if self._finished:
            raise ConflictError(
                f"Run '{self.name}' ({self.id}) is already recorded and cannot change; "
                "start a new Run to record more."
            )

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._finished:
            return
        if kind is None:
            self.finish()
        elif issubclass(kind, Exception | KeyboardInterrupt):
            self.tags["error"] = f"{kind.__name__}: {exc}"[:2000]
            self.finish("failed" if issubclass(kind, Exception) else "killed")


def _texts(values: Mapping[str, Any], what: str) -> dict[str, str]:
    return {_key(k, what): str(v) for k, v in values.items()}


def _key(key: Any, what: str) -> str:
    if not isinstance(key, str) or not key or len(key) > KEY_LENGTH:
        raise InvalidInputError(
            f"A {what} name must be a string of 1 to {KEY_LENGTH} characters; got {key!r:.80}."
        )
    return key


def _metric(key: str, value: Any, step: Any, timestamp: datetime) -> Metric:
    """A validated metric: a NaN or a naive timestamp is refused now, not at ``finish``."""
    try:
        number = float(value)
        step = operator.index(step)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"Metric {key!r} needs a number value and an integer step; "
            f"got value {value!r:.40} at step {step!r:.20}."
        ) from exc
    if math.isnan(number):
        raise InvalidInputError(
            f"Metric {key!r} at step {step} is NaN, which the run store cannot keep. "
            "Skip the value, or record why it is missing with run.set_tags()."
        )
    if timestamp.tzinfo is None:
        raise InvalidInputError(
            f"Metric {key!r} at step {step} has a timestamp without a time zone "
            f"({timestamp.isoformat()}); use modelyard.store.utcnow() or an aware datetime."
        )
    return Metric(_key(key, "metric"), number, step, timestamp)


@lru_cache(maxsize=1)
def _environment() -> dict[str, Any]:
    """Python, platform and library versions: fixed for the life of a process."""
    return environment()


_code_versions: dict[Path, tuple[float, dict[str, Any]]] = {}


def _code_version(root: Path) -> dict[str, Any]:
    """``code_version(root)``, reused for ``CODE_VERSION_TTL_SECONDS``: git runs twice per
    look-up, which would dominate a loop of short runs, yet a long session must still see
    a new commit."""
    now = time.monotonic()
    cached = _code_versions.get(root)
    if cached is None or now - cached[0] > CODE_VERSION_TTL_SECONDS:
        cached = (now, code_version(root))
        _code_versions[root] = cached
    return cached[1]


# ---------------------------------------------------------------------- reading


@dataclass(frozen=True)
class RunSummary:
    """A run as listed: identity, status, timing, parameters and the latest metrics."""

    id: str
    name: str
    kind: str
    status: str
    started_at: datetime
    wall_seconds: float | None
    metrics: dict[str, float]
    params: dict[str, str]
    spec_hash: str | None
    parent_id: str | None


@dataclass(frozen=True)
class ArtifactRef:
    name: str
    digest: str
    size: int


@dataclass(frozen=True)
class InputRef:
    """A dataset version a run read: its id, its ``name@version`` and the role."""

    dataset_version_id: str
    ref: str
    role: str


@dataclass(frozen=True)
class RunRecord(RunSummary):
    """Everything a run recorded; ``metrics`` holds each key's latest value."""

    ended_at: datetime | None
    cpu_seconds: float | None
    seed: int | None
    tags: dict[str, str]
    history: dict[str, list[MetricPoint]]
    artifacts: tuple[ArtifactRef, ...]
    inputs: tuple[InputRef, ...]
    environment: dict[str, Any]
    code_version: dict[str, Any]
    split: dict[str, Any] | None
    children: tuple[str, ...]


def list_runs(
    project: Project,
    limit: int = 50,
    *,
    kind: str | None = None,
    parent: str | None = None,
    status: str | None = None,
) -> list[RunSummary]:
    """The newest runs first, optionally only one ``kind``, ``status`` or ``parent`` run's."""
    if status is not None and status not in tables.RUN_STATUSES:
        raise InvalidInputError(
            f"Unknown run status {status!r}; use one of {', '.join(tables.RUN_STATUSES)}."
        )
    query = select(tables.Run).where(tables.Run.project_id == project.id)
    if kind is not None:
        query = query.where(tables.Run.kind == kind)
    if status is not None:
        query = query.where(tables.Run.status == status)
    if parent is not None:
        query = query.where(tables.Run.parent_run_id == parent)
    query = query.order_by(tables.Run.started_at.desc(), tables.Run.id.desc()).limit(limit)
    with project.db.read() as session:
        runs = session.scalars(query).all()
        ids = [run.id for run in runs]
        metrics = _latest_metrics(session, ids)
        params = _key_values(session, tables.RunParam, ids)
    return [
        RunSummary(**_summary_fields(run, metrics.get(run.id, {}), params.get(run.id, {})))
        for run in runs
    ]


def get_run(project: Project, run_id: str) -> RunRecord:
    """The full record of the run whose id is (or starts with) ``run_id``."""
    with project.db.read() as session:
        run = _find(session, project, run_id)
        history = _history(session, run.id)
        latest = {key: points[-1].value for key, points in history.items()}
        params = _key_values(session, tables.RunParam, [run.id]).get(run.id, {})
        children = select(tables.Run.id).where(tables.Run.parent_run_id == run.id)
        return RunRecord(
            **_summary_fields(run, latest, params),
            ended_at=run.ended_at,
            cpu_seconds=run.cpu_seconds,
            seed=run.seed,
            tags=_key_values(session, tables.RunTag, [run.id]).get(run.id, {}),
            history=history,
            artifacts=_artifacts(session, run.id),
            inputs=_inputs(session, run.id),
            environment=run.environment or {},
            code_version=run.code_version or {},
            split=run.split,
            children=tuple(session.scalars(children.order_by(tables.Run.started_at))),
        )


def metric_history(project: Project, run_id: str, key: str) -> list[MetricPoint]:
    """Every value of metric ``key`` in the run, by step (then time of logging)."""
    with project.db.read() as session:
        run = _find(session, project, run_id)
        points = _history(session, run.id, key).get(key)
        if points is None:
            keys = sorted(_history(session, run.id))
            raise NotFoundError(
                f"Run '{run.name}' ({run.id}) has no metric {key!r}; it has "
                f"{', '.join(keys) or 'none'}. See `modelyard runs show {run.id}`."
            )
        return points


def resolve_run_id(project: Project, run_id: str) -> str:
    """The full id of the one run whose id is or starts with ``run_id``."""
    with project.db.read() as session:
        return _find(session, project, run_id).id


MAX_LISTED_MATCHES = 10


def _find(session: Session, project: Project, run_id: str) -> tables.Run:
    """The run with this id or id prefix; an unknown or ambiguous prefix is an error."""
    matches = session.scalars(
        select(tables.Run)
        .where(
            tables.Run.project_id == project.id,
            tables.Run.id.startswith(run_id.strip(), autoescape=True),
        )
        .order_by(tables.Run.id)
        .limit(MAX_LISTED_MATCHES + 1)
    ).all()
    exact = [run for run in matches if run.id == run_id]
    if exact or len(matches) == 1:
        return (exact or matches)[0]
    if not matches:
        raise NotFoundError(
            f"No run '{run_id}' in project '{project.name}'. See `modelyard runs list`."
        )
    listed = ", ".join(f"{run.id} ({run.name})" for run in matches[:MAX_LISTED_MATCHES])
    more = " and more" if len(matches) > MAX_LISTED_MATCHES else ""
    raise InvalidInputError(
        f"Run id prefix '{run_id}' is ambiguous in project '{project.name}': it matches "
        f"{listed}{more}. Give more characters of the id.",
        details=[run.id for run in matches[:MAX_LISTED_MATCHES]],
    )


def _summary_fields(
    run: tables.Run, metrics: dict[str, float], params: dict[str, str]
) -> dict[str, Any]:
    return {
        "id": run.id,
        "name": run.name,
        "kind": run.kind,
        "status": run.status,
        "started_at": run.started_at,
        "wall_seconds": run.wall_seconds,
        "metrics": metrics,
        "params": params,
        "spec_hash": run.spec_hash,
        "parent_id": run.parent_run_id,
    }


def _latest_metrics(session: Session, run_ids: list[str]) -> dict[str, dict[str, float]]:
    """Each run's latest value per metric key (highest step, then last logged), in one query."""
    if not run_ids:
        return {}
    m = tables.RunMetric
    rank = func.row_number().over(
        partition_by=(m.run_id, m.key),
        order_by=(m.step.desc(), m.timestamp.desc(), m.id.desc()),
    )
    ranked = (
        select(m.run_id, m.key, m.value, rank.label("rank")).where(m.run_id.in_(run_ids)).subquery()
    )
    latest: dict[str, dict[str, float]] = {}
    rows = session.execute(
        select(ranked.c.run_id, ranked.c.key, ranked.c.value)
        .where(ranked.c.rank == 1)
        .order_by(ranked.c.key)
    )
    for run_id, key, value in rows:
        latest.setdefault(run_id, {})[key] = value
    return latest


def _key_values(
    session: Session, table: type[tables.RunParam] | type[tables.RunTag], run_ids: list[str]
) -> dict[str, dict[str, str]]:
    if not run_ids:
        return {}
    values: dict[str, dict[str, str]] = {}
    rows = session.execute(
        select(table.run_id, table.key, table.value)
        .where(table.run_id.in_(run_ids))
        .order_by(table.key)
    )
    for run_id, key, value in rows:
        values.setdefault(run_id, {})[key] = value
    return values


def _history(session: Session, run_id: str, key: str | None = None) -> dict[str, list[MetricPoint]]:
    m = tables.RunMetric
    query = select(m.key, m.step, m.value, m.timestamp).where(m.run_id == run_id)
    if key is not None:
        query = query.where(m.key == key)
    history: dict[str, list[MetricPoint]] = {}
    for k, step, value, timestamp in session.execute(
        query.order_by(m.key, m.step, m.timestamp, m.id)
    ):
        history.setdefault(k, []).append(MetricPoint(step, value, timestamp))
    return history


def _artifacts(session: Session, run_id: str) -> tuple[ArtifactRef, ...]:
    a = tables.RunArtifact
    rows = session.execute(
        select(a.name, a.digest, a.size).where(a.run_id == run_id).order_by(a.name)
    )
    return tuple(ArtifactRef(name, digest, size) for name, digest, size in rows)


def _inputs(session: Session, run_id: str) -> tuple[InputRef, ...]:
    i, v, d = tables.RunInput, tables.DatasetVersion, tables.Dataset
    rows = session.execute(
        select(i.dataset_version_id, d.name, v.version, i.role)
        .join(v, v.id == i.dataset_version_id)
        .join(d, d.id == v.dataset_id)
        .where(i.run_id == run_id)
        .order_by(i.role, d.name, v.version)
    )
    return tuple(
        InputRef(version_id, f"{name}@{number}", role) for version_id, name, number, role in rows
    )
