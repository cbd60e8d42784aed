"""The schema is created and upgraded on first use, and matches the models."""

from __future__ import annotations

import subprocess
import sys

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from modelyard.errors import MigrationError
from modelyard.store import Database, migration
from modelyard.store.tables import Base, Project, RegisteredModel, Run


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _revision(url: str) -> str | None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return migration.current_revision(connection)
    finally:
        engine.dispose()


def test_head_constant_matches_the_revision_files() -> None:
    assert migration.head_revision() == migration.HEAD_REVISION
    assert migration.known_revisions() == {"0001", "0002", "0003", "0004", "0005"}


def test_migrations_apply_on_first_use(db_url: str) -> None:
    db = Database(db_url)
    assert _tables(db_url) == set(), "opening a Database must not touch it yet"

    with db.read() as session:
        assert session.scalars(sa.select(Project)).all() == []

    assert _tables(db_url) == set(Base.metadata.tables) | {"alembic_version"}
    assert _revision(db_url) == migration.HEAD_REVISION
    db.dispose()


def test_old_database_upgrades_in_place(db_url: str) -> None:
    engine = sa.create_engine(db_url)
    with engine.begin() as connection:
        migration.upgrade(connection, "0001")
        connection.execute(
            sa.text("INSERT INTO projects (id, name, created_at) VALUES ('P1', 'old', :t)"),
            {"t": "2024-05-01 12:00:00"},
        )
        connection.execute(
            sa.text(
                "INSERT INTO runs (id, project_id, name, kind, status, started_at) "
                "VALUES ('R1', 'P1', 'first', 'train', 'finished', :t)"
            ),
            {"t": "2024-05-01 12:00:00"},
        )
    engine.dispose()
    assert "registered_models" not in _tables(db_url)
    assert _revision(db_url) == "0001"

    db = Database(db_url)
    with db.write() as session:
        assert session.get(Project, "P1").name == "old"  # type: ignore[union-attr]
        assert session.get(Run, "R1").status == "finished"  # type: ignore[union-attr]
        session.add(RegisteredModel(project_id="P1", name="loans"))
    db.dispose()

    assert _revision(db_url) == migration.HEAD_REVISION
    assert {"registered_models", "audit_events", "api_tokens"} <= _tables(db_url)


def test_models_and_migrations_define_the_same_schema(db: Database, db_url: str) -> None:
    with db.read():
        pass  # migrate
    engine = sa.create_engine(db_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert differences == []


def test_database_from_a_newer_modelyard_is_refused(db: Database, db_url: str) -> None:
    with db.read():
        pass
    engine = sa.create_engine(db_url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()

    newer = Database(db_url)
    with pytest.raises(MigrationError, match=r"'9999'.*Upgrade modelyard"):
        newer.read().__enter__()
    newer.dispose()


def test_up_to_date_database_opens_without_importing_alembic(db: Database, db_url: str) -> None:
    with db.read():
        pass
    code = (
        "import sys\n"
        "import modelyard.store\n"
        "assert 'alembic' not in sys.modules, 'importing the store loaded alembic'\n"
        f"db = modelyard.store.Database({db_url!r})\n"
        "with db.read() as session: pass\n"
        "assert 'alembic' not in sys.modules, 'the fast path loaded alembic'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
