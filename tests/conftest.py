"""Fixtures shared by the whole suite.

``db_url`` runs a test once per metadata backend: SQLite in the test's
temporary folder, and PostgreSQL in a fresh database created for the test
and dropped after it. PostgreSQL is found at ``MODELYARD_TEST_PG_URL``
(default: the local service, database ``test``). When it cannot be reached
its tests are skipped, or fail if ``MODELYARD_REQUIRE_SERVICES=1`` (as in CI).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from modelyard.project import Project
from modelyard.store import Database

PG_ADMIN_URL = os.environ.get(
    "MODELYARD_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_unavailable(reason: str) -> None:
    message = f"PostgreSQL is not reachable at {sa.make_url(PG_ADMIN_URL)}: {reason}"
    if os.environ.get("MODELYARD_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message}. MODELYARD_REQUIRE_SERVICES=1, so this is a failure.")
    pytest.skip(f"{message}. Start it or set MODELYARD_TEST_PG_URL.")


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[sa.Engine]:
    """An AUTOCOMMIT engine on the PostgreSQL service, for CREATE/DROP DATABASE."""
    engine = sa.create_engine(
        PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.DBAPIError as exc:
        engine.dispose()
        _postgres_unavailable(str(exc.orig).strip().splitlines()[0])
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_url(pg_admin: sa.Engine) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database that is dropped after the test."""
    name = f"modelyard_test_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with pg_admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL to a new, empty metadata database, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'modelyard.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """A ``Database`` on ``db_url`` (migrated on first use), disposed after the test."""
    database = Database(db_url)
    yield database
    database.dispose()


def _open_demo_project(folder: Path) -> Project:
    from modelyard.data.demo import DEMO_SPEC

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "modelyard.yaml").write_text(DEMO_SPEC)
    return Project.open(folder / "modelyard.yaml")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    """The demo project in a fresh folder, on the embedded SQLite store."""
    monkeypatch.delenv("MODELYARD_DB_URL", raising=False)
    monkeypatch.delenv("MODELYARD_ARTIFACTS", raising=False)
    opened = _open_demo_project(tmp_path / "project")
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def module_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """Like ``project``, shared by a module's tests (for work too slow to repeat)."""
    opened = _open_demo_project(tmp_path_factory.mktemp("project"))
    yield opened
    opened.close()
