"""Several processes writing at once: nothing lost, nothing half-visible, numbers unique."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from modelyard.errors import NotFoundError
from modelyard.store import Database, get_or_create, lock_for_update, new_id, next_version
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

Race = Callable[..., None]


def _count(session: sa.orm.Session, model: type[object], *where: sa.ColumnElement[bool]) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(model).where(*where)) or 0


def test_two_processes_on_a_new_database_write_runs_without_loss(db_url: str, race: Race) -> None:
    # Both start on an empty database, so they also race to create the schema.
    race(["runs", db_url, "50", "20"], ["runs", db_url, "50", "20"])

    db = Database(db_url)
    with db.read() as session:
        run_ids = session.scalars(sa.select(Run.id)).all()
        assert len(run_ids) == 100
        assert len(set(run_ids)) == 100
        assert _count(session, RunMetric) == 100 * 20
        assert _count(session, RunParam) == 100 * 3
        assert _count(session, Project) == 1
    db.dispose()


def test_version_numbers_stay_unique_under_two_writers(db_url: str, race: Race) -> None:
    race(["versions", db_url, "15"], ["versions", db_url, "15"])

    db = Database(db_url)
    with db.read() as session:
        versions = session.scalars(sa.select(DatasetVersion.version)).all()
        assert sorted(versions) == list(range(1, 31))
        assert _count(session, Dataset) == 1
    db.dispose()


def test_a_process_killed_mid_write_leaves_nothing_behind(
    db: Database, spawn: Callable[..., Any]
) -> None:
    with db.write() as session:
        project = Project(name="p")
        session.add(project)
    run_id = new_id()
    worker = spawn("hold", db.url.render_as_string(hide_password=False), project.id, run_id)
    worker.expect("flushed")  # the rows now exist inside its open transaction
    assert worker.kill() == -signal.SIGKILL

    with db.read() as session:
        for model in (RunParam, RunTag, RunArtifact, RunMetric):
            assert _count(session, model, model.run_id == run_id) == 0
        assert _count(session, Run) == 0
    with db.write() as session:  # the dead writer's lock is gone
        session.add(Run(id=run_id, project_id=project.id, name="retry", kind="train"))
    with db.read() as session:
        assert session.get(Run, run_id) is not None


def test_get_or_create_returns_the_existing_row(db: Database) -> None:
    with db.write() as session:
        first = get_or_create(session, Project, {"name": "p"})
    with db.write() as session:
        again = get_or_create(session, Project, {"name": "p"})
        other = get_or_create(session, Project, {"name": "q"})
    assert again.id == first.id
    assert other.id != first.id


def test_next_version_counts_per_parent(db: Database) -> None:
    with db.write() as session:
        project = get_or_create(session, Project, {"name": "p"})
        a = get_or_create(session, Dataset, {"project_id": project.id, "name": "a"})
        b = get_or_create(session, Dataset, {"project_id": project.id, "name": "b"})
        for dataset in (a, a, b):
            number = next_version(
                session, dataset, DatasetVersion.version, DatasetVersion.dataset_id
            )
            session.add(
                DatasetVersion(
                    dataset_id=dataset.id,
                    version=number,
                    kind="raw",
                    content_hash=new_id(),
                    blob="0" * 64,
                    n_rows=0,
                    n_columns=0,
                    schema={},
                )
            )
            session.flush()
    with db.read() as session:
        rows = session.execute(
            sa.select(Dataset.name, DatasetVersion.version).join(Dataset).order_by(Dataset.name)
        ).all()
    assert sorted(map(tuple, rows)) == [("a", 1), ("a", 2), ("b", 1)]


def test_lock_for_update_reports_a_deleted_row(db: Database) -> None:
    with db.write() as session:
        project = Project(name="p")
        session.add(project)
    with db.write() as session:
        session.execute(sa.delete(Project))
    with pytest.raises(NotFoundError, match="no longer exists"), db.write() as session:
        lock_for_update(session, project)


def test_lock_for_update_returns_the_fresh_row(db: Database) -> None:
    with db.write() as session:
        project = Project(name="old")
        session.add(project)
    with db.write() as session:
        session.execute(sa.update(Project).values(name="new"))
    with db.write() as session:
        assert lock_for_update(session, project).name == "new"
