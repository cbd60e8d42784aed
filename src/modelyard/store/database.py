"""The metadata database: one engine, short transactions, errors that say what to do.

    db = Database(Database.default_url(Path(".modelyard")))
    with db.write() as session:          # one transaction: all of it or none of it
        session.add(Project(name="fraud"))
    with db.read() as session:           # a consistent, read-only snapshot
        names = session.scalars(select(Project.name)).all()

SQLite is the embedded default, PostgreSQL is chosen with ``MODELYARD_DB_URL``.
Both behave the same to callers:

- ``write()`` commits when the block ends and rolls back if it raises, so a
  record appears whole or not at all, even if the process is killed midway.
  On SQLite it starts with ``BEGIN IMMEDIATE``: the write lock is taken up
  front, so two writing processes queue (up to ``BUSY_TIMEOUT_SECONDS``)
  instead of failing with "database is locked" when a reader turns writer.
  SQLite runs in WAL mode, so readers never wait for writers.
- ``read()`` is read-only on both backends; changing data in it is a bug and
  raises ``StoreError``.
- The schema is brought up to date on first use, one process at a time.
- SQLAlchemy errors never escape: a uniqueness or foreign-key violation is a
  ``ConflictError``, anything else a ``StoreError`` naming the database
  (password hidden) and what to check.

Numbering things per parent (dataset versions, model versions) safely under
concurrent writers is done with the helpers in ``modelyard.store.concurrency``:
lock the parent row, read the highest number, insert the next one::

    with db.write() as session:
        dataset = get_or_create(session, Dataset, {"project_id": pid, "name": "loans"})
        version = next_version(session, dataset, DatasetVersion.version,
                               DatasetVersion.dataset_id)
        session.add(DatasetVersion(dataset_id=dataset.id, version=version, ...))
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session

from modelyard.errors import ConflictError, MigrationError, ModelyardError, StoreError
from modelyard.store import migration

ENV_URL = "MODELYARD_DB_URL"
BUSY_TIMEOUT_SECONDS = 30
CONNECT_TIMEOUT_SECONDS = 10
MIGRATION_LOCK_KEY = 0x6D6F64656C796172
"""The PostgreSQL advisory lock that serialises schema upgrades ("modelyar" in ASCII)."""

_WRITING = "modelyard_writing"
_CREDENTIALS = re.compile(r"(://[^:/@\s]*:)[^@/\s]*@")


class Database:
    """A metadata database reached by a SQLAlchemy URL; safe to share between threads."""

    def __init__(self, url: str) -> None:
        try:
            self._url = sa.make_url(url)
        except sa.exc.ArgumentError as exc:
            raise StoreError(
                f"'{_hide_secrets(url)}' is not a database URL. Use sqlite:///path/to/modelyard.db "
                f"or postgresql+psycopg://user:password@host:5432/dbname (in {ENV_URL})."
            ) from exc
        self._engine = _create_engine(self._url)
        self._writer = self._engine.execution_options(**{_WRITING: True})
        self._schema_ready = False
        self._schema_lock = threading.Lock()

    @staticmethod
    def default_url(folder: Path) -> str:
        """``MODELYARD_DB_URL`` if set, else an SQLite file in ``folder`` (created if missing)."""
        if url := os.environ.get(ENV_URL):
            return url
        folder.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{folder.resolve() / 'modelyard.db'}"

    @property
    def url(self) -> sa.URL:
        """The database URL; ``str()`` of it hides the password."""
        return self._url

    @property
    def dialect(self) -> str:
        """The backend's name: ``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    def __repr__(self) -> str:
        return f"Database({self._safe_url!r})"

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session in one write transaction: committed if the block succeeds, else rolled back."""
        with self._session(writing=True) as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session in one read-only transaction that sees a consistent snapshot."""
        with self._session(writing=False) as session:
            yield session

    def dispose(self) -> None:
        """Close every pooled connection (before forking, or when done with the database)."""
        self._engine.dispose()

    # ------------------------------------------------------------------ sessions

    @contextmanager
    def _session(self, *, writing: bool) -> Iterator[Session]:
        self._ensure_schema()
        with (
            self._mapped_errors(writing=writing),
            self._connect(writing=writing) as connection,
            Session(bind=connection, expire_on_commit=False) as session,
            session.begin(),
        ):
            yield session

    @contextmanager
    def _connect(self, *, writing: bool) -> Iterator[sa.Connection]:
        """A pooled connection; failing to get one is reported as "cannot reach"."""
        try:
            connection = (self._writer if writing else self._engine).connect()
        except sa.exc.DBAPIError as exc:
            raise StoreError(self._unreachable(exc), details={"url": self._safe_url}) from exc
        with connection:
            yield connection

    @contextmanager
    def _mapped_errors(self, *, writing: bool) -> Iterator[None]:
        try:
            yield
        except sa.exc.IntegrityError as exc:
            raise ConflictError(
                f"The write conflicts with data already in the metadata database "
                f"({_reason(exc, self._url)}); nothing was saved. Use another name, or "
                "reload the object and retry.",
                details={"url": self._safe_url},
            ) from exc
        except sa.exc.DBAPIError as exc:
            raise StoreError(self._failed(exc, writing), details={"url": self._safe_url}) from exc

    # ------------------------------------------------------------------ schema

    def _ensure_schema(self) -> None:
        """Upgrade the schema on first use; afterwards this is a flag check."""
        if self._schema_ready:
            return
        with self._schema_lock:
            if not self._schema_ready:
                if not self._schema_is_current():
                    self._upgrade_schema()
                self._schema_ready = True

    def _schema_is_current(self) -> bool:
        """The fast path: one query, and Alembic is not imported."""
        with self._mapped_errors(writing=False), self._connect(writing=False) as connection:
            try:
                with connection.begin():
                    query = sa.text(f"SELECT version_num FROM {migration.VERSION_TABLE}")
                    return connection.execute(query).scalar() == migration.HEAD_REVISION
            except sa.exc.DBAPIError:  # no table yet, or unreadable: the slow path decides
                return False

    def _upgrade_schema(self) -> None:
        """Upgrade in one transaction that holds a lock, so concurrent openers queue."""
        with (
            self._mapped_errors(writing=True),
            self._connect(writing=True) as connection,
            _foreign_keys_off(connection),
        ):
            try:
                with connection.begin():  # SQLite: BEGIN IMMEDIATE is the lock
                    if self.dialect == "postgresql":
                        lock = sa.text("SELECT pg_advisory_xact_lock(:key)")
                        connection.execute(lock, {"key": MIGRATION_LOCK_KEY})
                    self._upgrade_locked(connection)
            except ModelyardError:
                raise
            except Exception as exc:
                raise MigrationError(
                    f"Cannot bring the metadata database at {self._safe_url} up to date: "
                    f"{_reason(exc, self._url)}. Nothing was changed. Check that the user may "
                    "create tables; if the database was edited by hand, restore it from a backup.",
                    details={"url": self._safe_url},
                ) from exc

    def _upgrade_locked(self, connection: sa.Connection) -> None:
        current = migration.current_revision(connection)
        if current == migration.HEAD_REVISION:
            return  # another process upgraded while we waited for the lock
        if current is not None and current not in migration.known_revisions():
            raise MigrationError(
                f"The metadata database at {self._safe_url} is at schema revision "
                f"'{current}', which this version of modelyard does not know (its newest "
                f"is '{migration.HEAD_REVISION}'). Upgrade modelyard to open it.",
                details={"url": self._safe_url, "revision": current},
            )
        migration.upgrade(connection)
        if self.dialect == "sqlite":
            _check_foreign_keys(connection)

    # ------------------------------------------------------------------ messages

    @property
    def _safe_url(self) -> str:
        return self._url.render_as_string(hide_password=True)

    def _unreachable(self, exc: sa.exc.DBAPIError) -> str:
        reason = _reason(exc, self._url)
        if self.dialect == "sqlite":
            return (
                f"Cannot open the metadata database at {self._safe_url}: {reason}. "
                "Check that its folder exists and is writable."
            )
        return (
            f"Cannot reach the metadata database at {self._safe_url}: {reason}. Start the "
            f"database server (or check the host, port, database, user and password in "
            f"{ENV_URL}), or unset {ENV_URL} to use the embedded SQLite store."
        )

    def _failed(self, exc: sa.exc.DBAPIError, writing: bool) -> str:
        reason = _reason(exc, self._url)
        lowered = reason.lower()
        if not writing and ("readonly" in lowered or "read-only" in lowered):
            return (
                f"Cannot change data inside db.read() ({reason}); "
                "use db.write() for changes. Nothing was saved."
            )
        if "locked" in lowered:
            return (
                f"The metadata database at {self._safe_url} stayed locked for "
                f"{BUSY_TIMEOUT_SECONDS} s ({reason}): another process is holding a long "
                "write. Wait for it to finish or stop it, then retry."
            )
        return (
            f"The metadata database at {self._safe_url} failed: {reason}. Retry; if it "
            "keeps failing, check the database server's log, its disk space and permissions."
        )


# ---------------------------------------------------------------------- engines


def _create_engine(url: sa.URL) -> sa.Engine:
    backend = url.get_backend_name()
    if backend == "sqlite":
        engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_SECONDS})
        event.listen(engine, "connect", _configure_sqlite)
        event.listen(engine, "begin", _begin_sqlite)
        return engine
    if backend == "postgresql":
        engine = sa.create_engine(
            url, pool_pre_ping=True, connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS}
        )
        event.listen(engine, "begin", _begin_postgresql)
        return engine
    raise StoreError(
        f"modelyard stores metadata in SQLite or PostgreSQL, not '{backend}'. "
        f"Set {ENV_URL} to a postgresql+psycopg://... URL, or unset it to use SQLite."
    )


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    """Per-connection SQLite settings; SQLAlchemy, not the driver, will emit BEGIN."""
    dbapi_connection.isolation_level = None
    _enable_wal(dbapi_connection)
    for pragma in (
        "foreign_keys = ON",
        f"busy_timeout = {BUSY_TIMEOUT_SECONDS * 1000}",
        "synchronous = NORMAL",
    ):
        dbapi_connection.execute(f"PRAGMA {pragma}")


def _enable_wal(dbapi_connection: Any) -> None:
    """Switch the file to WAL mode (it stays so). On a new file two connections may
    race to switch it, and SQLite then answers "locked" at once instead of waiting
    for the busy timeout, so wait here."""
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            dbapi_connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def _begin_sqlite(connection: sa.Connection) -> None:
    writing = bool(connection.get_execution_options().get(_WRITING))
    connection.exec_driver_sql(f"PRAGMA query_only = {0 if writing else 1}")
    connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


def _begin_postgresql(connection: sa.Connection) -> None:
    """Reads see one snapshot for the whole block, as they do on SQLite; a read-only
    REPEATABLE READ transaction never fails with a serialisation error."""
    if not connection.get_execution_options().get(_WRITING):
        connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")


@contextmanager
def _foreign_keys_off(connection: sa.Connection) -> Iterator[None]:
    """SQLite only: batch migrations rebuild tables, and with foreign keys on,
    dropping the old table would cascade-delete the rows that point at it.
    The pragma only works outside a transaction, hence the raw connection."""
    if connection.dialect.name != "sqlite":
        yield
        return
    raw = connection.connection.driver_connection
    assert raw is not None
    raw.execute("PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        raw.execute("PRAGMA foreign_keys = ON")


def _check_foreign_keys(connection: sa.Connection) -> None:
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise MigrationError(
            f"The schema upgrade would leave {len(broken)} rows pointing at missing records "
            f"(first: table {broken[0][0]}); it was rolled back. Report this as a bug."
        )


# ---------------------------------------------------------------------- messages


def _reason(exc: BaseException, url: sa.URL) -> str:
    """The driver's own first line of explanation, with any password removed."""
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    return _hide_secrets(lines[0] if lines else type(original).__name__, url.password)


def _hide_secrets(text: str, password: str | None = None) -> str:
    """Mask ``user:password@`` in URLs, and the known password anywhere."""
    text = _CREDENTIALS.sub(r"\1***@", text)
    if password:
        text = text.replace(str(password), "***")
    return text
