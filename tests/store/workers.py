"""Child processes for the store's multi-process tests, run as ``python workers.py MODE ...``.

Each worker that takes part in a race prints ``ready`` and waits for ``go``
on stdin, so the parent can release all of them at the same moment.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from modelyard.store import ArtifactStore, Database, get_or_create, new_id, next_version
from modelyard.store.tables import (
    Dataset,
    DatasetVersion,
    Project,
    Run,
    RunArtifact,
    RunMetric,
    RunParam,
    RunTag,
)


def wait_for_go() -> None:
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("expected 'go' on stdin")


def write_runs(url: str, count: str, metrics: str) -> None:
    """Write ``count`` runs, each in its own transaction, with params and metrics."""
    db = Database(url)
    wait_for_go()
    for i in range(int(count)):
        with db.write() as session:
            project = get_or_create(session, Project, {"name": "shared"})
            run = Run(id=new_id(), project_id=project.id, name=f"run-{i}", kind="train")
            session.add(run)
            session.add_all(RunParam(run_id=run.id, key=f"p{k}", value=str(k)) for k in range(3))
            session.add_all(
                RunMetric(run_id=run.id, key="loss", value=1.0 / (s + 1), step=s)
                for s in range(int(metrics))
            )


def allocate_versions(url: str, count: str) -> None:
    """Add ``count`` versions to one shared dataset, numbering them with ``next_version``."""
    db = Database(url)
    wait_for_go()
    for _ in range(int(count)):
        with db.write() as session:
            project = get_or_create(session, Project, {"name": "shared"})
            dataset = get_or_create(session, Dataset, {"project_id": project.id, "name": "d"})
            number = next_version(
                session, dataset, DatasetVersion.version, DatasetVersion.dataset_id
            )
            digest = os.urandom(32).hex()
            session.add(
                DatasetVersion(
                    dataset_id=dataset.id,
                    version=number,
                    kind="raw",
                    content_hash=digest,
                    blob=digest,
                    n_rows=1,
                    n_columns=1,
                    schema={},
                )
            )


def hold_write(url: str, project_id: str, run_id: str) -> None:
    """Write a run and its children, flush, report, then wait inside the open transaction."""
    db = Database(url)
    with db.write() as session:
        session.add(Run(id=run_id, project_id=project_id, name="doomed", kind="train"))
        session.flush()
        session.add_all(RunParam(run_id=run_id, key=f"p{k}", value="x") for k in range(50))
        session.add_all(RunTag(run_id=run_id, key=f"t{k}", value="x") for k in range(10))
        session.add(RunArtifact(run_id=run_id, name="model", digest="0" * 64, size=1))
        session.add_all(
            RunMetric(run_id=run_id, key="loss", value=0.5, step=s) for s in range(2000)
        )
        session.flush()
        print("flushed", flush=True)
        sys.stdin.readline()  # the parent kills us before this returns


def put_file(root: str, path: str) -> None:
    ArtifactStore(root).put_file(path)


if __name__ == "__main__":
    mode, *arguments = sys.argv[1:]
    workers: dict[str, Callable[..., None]] = {
        "runs": write_runs,
        "versions": allocate_versions,
        "hold": hold_write,
        "put": put_file,
    }
    workers[mode](*arguments)
