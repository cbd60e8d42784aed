"""Runs: the complete record of one piece of training work.

``Run`` gathers parameters, metrics (step-wise), tags, artifacts and input
dataset versions in memory and writes them in **one transaction** when the
run ends, together with the spec hash, code version, environment, seed and
timings — so logging 10,000 metrics costs one commit, and a run that is killed
midway leaves nothing half-written behind.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any

from sqlalchemy import select

from modelyard.errors import NotFoundError
from modelyard.project import Project
from modelyard.store import Blob, new_id, tables, utcnow
from modelyard.train.environment import code_version, environment


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
    metrics: list[tuple[str, float, int]] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, Blob] = field(default_factory=dict)
    inputs: list[tuple[str, str]] = field(default_factory=list)
    split: dict[str, Any] | None = None
    _started: datetime = field(default_factory=utcnow)
    _wall: float = field(default_factory=time.perf_counter)
    _cpu: float = field(default_factory=time.process_time)

    def log_params(self, params: dict[str, Any]) -> None:
        self.params.update({k: str(v) for k, v in params.items()})

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        self.metrics.extend((k, float(v), step) for k, v in metrics.items())

    def log_artifact(self, name: str, blob: Blob) -> None:
        self.artifacts[name] = blob

    def add_input(self, dataset_version_id: str, role: str) -> None:
        self.inputs.append((dataset_version_id, role))

    def finish(self, status: str = "finished") -> None:
        """Write the whole run in one transaction."""
        with self.project.db.write() as session:
            session.add(self._row(status))
            session.flush()
            session.add_all(
                tables.RunParam(run_id=self.id, key=k, value=v) for k, v in self.params.items()
            )
            session.add_all(
                tables.RunMetric(run_id=self.id, key=k, value=v, step=s) for k, v, s in self.metrics
            )
            session.add_all(
                tables.RunTag(run_id=self.id, key=k, value=v) for k, v in self.tags.items()
            )
            session.add_all(
                tables.RunArtifact(run_id=self.id, name=n, digest=b.digest, size=b.size)
                for n, b in self.artifacts.items()
            )
            session.add_all(
                tables.RunInput(run_id=self.id, dataset_version_id=d, role=r)
                for d, r in self.inputs
            )

    def _row(self, status: str) -> tables.Run:
        return tables.Run(
            id=self.id,
            project_id=self.project.id,
            parent_run_id=self.parent_id,
            name=self.name,
            kind=self.kind,
            status=status,
            spec_hash=self.project.spec_hash,
            code_version=code_version(self.project.root),
            environment=environment(),
            seed=self.seed,
            split=self.split,
            started_at=self._started,
            ended_at=utcnow(),
            wall_seconds=time.perf_counter() - self._wall,
            cpu_seconds=time.process_time() - self._cpu,
        )

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.finish()
        elif issubclass(kind, Exception):
            self.tags["error"] = f"{kind.__name__}: {exc}"[:2000]
            self.finish("failed")


@dataclass(frozen=True)
class RunSummary:
    id: str
    name: str
    kind: str
    status: str
    started_at: datetime
    wall_seconds: float | None
    metrics: dict[str, float]
    params: dict[str, str]
    spec_hash: str | None


def list_runs(project: Project, limit: int = 50) -> list[RunSummary]:
    with project.db.read() as session:
        runs = session.scalars(
            select(tables.Run)
            .where(tables.Run.project_id == project.id)
            .order_by(tables.Run.started_at.desc())
            .limit(limit)
        ).all()
        return [_summary(session, run) for run in runs]


def get_run(project: Project, run_id: str) -> RunSummary:
    with project.db.read() as session:
        run = session.scalar(
            select(tables.Run).where(
                tables.Run.project_id == project.id, tables.Run.id.startswith(run_id)
            )
        )
        if run is None:
            raise NotFoundError(
                f"No run '{run_id}' in project '{project.name}'. See `modelyard runs list`."
            )
        return _summary(session, run)


def _summary(session: Any, run: tables.Run) -> RunSummary:
    metrics = {
        m.key: m.value
        for m in session.scalars(
            select(tables.RunMetric)
            .where(tables.RunMetric.run_id == run.id)
            .order_by(tables.RunMetric.step)
        )
    }
    params = {
        p.key: p.value
        for p in session.scalars(select(tables.RunParam).where(tables.RunParam.run_id == run.id))
    }
    return RunSummary(
        run.id,
        run.name,
        run.kind,
        run.status,
        run.started_at,
        run.wall_seconds,
        metrics,
        params,
        run.spec_hash,
    )
