"""Transactions, error mapping and settings of the metadata database."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from modelyard.errors import ConflictError, StoreError
from modelyard.store import Database
from modelyard.store.tables import Project, Run, RunMetric


def _project(db: Database, name: str = "p") -> str:
    with db.write() as session:
        project = Project(name=name)
        session.add(project)
    return project.id


def test_write_commits_and_objects_stay_usable(db: Database) -> None:
    with db.write() as session:
        project = Project(name="fraud")
        session.add(project)
    assert project.name == "fraud"  # expire_on_commit=False: no reload needed
    with db.read() as session:
        assert session.scalars(sa.select(Project.name)).all() == ["fraud"]


def test_an_exception_rolls_back_the_whole_transaction(db: Database) -> None:
    project_id = _project(db)
    with pytest.raises(RuntimeError, match="boom"), db.write() as session:
        session.add(Run(id="R1", project_id=project_id, name="r", kind="train"))
        session.flush()
        raise RuntimeError("boom")
    with db.read() as session:
        assert session.get(Run, "R1") is None


def test_integrity_error_is_a_conflict_and_saves_nothing(db: Database) -> None:
    _project(db, "taken")
    with pytest.raises(ConflictError, match="nothing was saved") as caught, db.write() as session:
        session.add(Project(name="new-one"))
        session.flush()
        session.add(Project(name="taken"))
    assert caught.value.http_status == 409
    with db.read() as session:
        assert session.scalars(sa.select(Project.name)).all() == ["taken"]


def test_foreign_keys_are_enforced(db: Database) -> None:
    with pytest.raises(ConflictError), db.write() as session:
        session.add(Run(project_id="no-such-project", name="r", kind="train"))


def test_read_sessions_refuse_writes(db: Database) -> None:
    with pytest.raises(StoreError, match=r"use db\.write\(\)"), db.read() as session:
        session.add(Project(name="sneaky"))
    with db.read() as session:
        assert session.scalars(sa.select(Project)).all() == []


def test_a_read_sees_one_snapshot_while_others_commit(db: Database) -> None:
    _project(db, "first")
    with db.read() as session:
        before = session.scalars(sa.select(Project.name)).all()
        _project(db, "second")  # commits in another transaction meanwhile
        after = session.scalars(sa.select(Project.name)).all()
    assert before == after == ["first"]
    with db.read() as session:
        assert len(session.scalars(sa.select(Project)).all()) == 2


def test_timestamps_come_back_timezone_aware_utc(db: Database) -> None:
    plus_two = timezone(timedelta(hours=2))
    started = datetime(2025, 3, 1, 14, 30, tzinfo=plus_two)
    project_id = _project(db)
    with db.write() as session:
        session.add(Run(id="R1", project_id=project_id, name="r", kind="t", started_at=started))
    with db.read() as session:
        run = session.get(Run, "R1")
        assert run is not None
        assert run.started_at == started
        assert run.started_at.tzinfo == UTC


def test_naive_timestamps_are_refused(db: Database) -> None:
    project_id = _project(db)
    with pytest.raises(sa.exc.StatementError, match="no time zone"), db.write() as session:
        session.add(Run(project_id=project_id, name="r", kind="t", started_at=datetime(2025, 1, 1)))


def test_threads_can_share_one_database(db: Database) -> None:
    project_id = _project(db)

    def write_runs() -> None:
        for _ in range(10):
            with db.write() as session:
                run = Run(project_id=project_id, name="r", kind="train")
                session.add(run)
                session.flush()
                session.add(RunMetric(run_id=run.id, key="loss", value=0.1))

    threads = [threading.Thread(target=write_runs) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with db.read() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Run)) == 40
        assert session.scalar(sa.select(sa.func.count()).select_from(RunMetric)) == 40


def test_dialect_names_the_backend(db: Database, db_url: str) -> None:
    assert db.dialect == sa.make_url(db_url).get_backend_name()


def test_unreachable_postgres_is_a_store_error_without_the_password() -> None:
    db = Database("postgresql+psycopg://modelyard:hunter2@127.0.0.1:1/metadata")
    with pytest.raises(StoreError) as caught, db.read():
        pass
    message = caught.value.message
    assert "Cannot reach the metadata database" in message
    assert "127.0.0.1:1/metadata" in message
    assert "MODELYARD_DB_URL" in message
    assert "hunter2" not in message
    assert "hunter2" not in str(caught.value.details)
    assert "hunter2" not in repr(db)
    db.dispose()


def test_sqlite_in_a_missing_folder_is_a_store_error(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'missing' / 'modelyard.db'}")
    with pytest.raises(StoreError, match="Check that its folder exists"), db.read():
        pass


@pytest.mark.parametrize(
    ("url", "expected"),
    [("not a url", "is not a database URL"), ("mysql://u:pw@h/db", "not 'mysql'")],
)
def test_unsupported_urls_are_refused(url: str, expected: str) -> None:
    with pytest.raises(StoreError, match=expected) as caught:
        Database(url)
    assert ":pw@" not in caught.value.message


def test_default_url_is_sqlite_in_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODELYARD_DB_URL", raising=False)
    folder = tmp_path / ".modelyard"
    url = Database.default_url(folder)
    assert url == f"sqlite:///{folder / 'modelyard.db'}"
    assert folder.is_dir()


def test_default_url_honours_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELYARD_DB_URL", "postgresql+psycopg://u@h/db")
    assert Database.default_url(tmp_path / "unused") == "postgresql+psycopg://u@h/db"
    assert not (tmp_path / "unused").exists()


def test_sqlite_connections_use_wal_and_foreign_keys(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    with db.read() as session:
        pragmas = {
            name: session.execute(sa.text(f"PRAGMA {name}")).scalar()
            for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")
        }
    assert pragmas == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "busy_timeout": 30_000,
        "synchronous": 1,  # NORMAL
    }
    db.dispose()
