"""Bringing a metadata database's schema up to date with Alembic.

The revisions live in ``migrations/versions`` inside the package and are
configured here in code, so no ``alembic.ini`` is needed at run time.
Alembic is imported only when a database is behind: opening an up-to-date
database costs one query against ``alembic_version`` (see ``HEAD_REVISION``).

Every function takes a connection that is already inside a transaction and
leaves committing to the caller, so a whole upgrade is one transaction on
both backends (SQLite and PostgreSQL both have transactional DDL): it
happens completely or not at all.

To add a revision (developers): change ``tables.py``, then from the repository root::

    python -c "from modelyard.store import migration; migration.new_revision('add x', '0003')"

which autogenerates ``versions/r0003_add_x.py`` against a scratch SQLite
database at the current head. Review it (use ``op.batch_alter_table`` for
SQLite-unfriendly changes), run ``ruff check --fix`` and ``ruff format`` on
it, and bump ``HEAD_REVISION``; the tests check that head and that the
migrated schema equals the models on both backends.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from alembic.config import Config

HEAD_REVISION = "0005"
"""The newest revision in ``migrations/versions``; a test keeps the two in step."""

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version"


def current_revision(connection: sa.Connection) -> str | None:
    """The revision the database is at, or None when it has no schema yet.

    Checks for the table first rather than catching the error: on PostgreSQL
    a failed query would spoil the caller's transaction.
    """
    if not sa.inspect(connection).has_table(VERSION_TABLE):
        return None
    return connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def known_revisions() -> set[str]:
    """Every revision id this version of modelyard can upgrade from."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    return {rev.revision for rev in script.walk_revisions()}


def head_revision() -> str:
    """The head as Alembic computes it from the revision files."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the migrations folder holds no revision"
    return head


def upgrade(connection: sa.Connection, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` inside the caller's transaction."""
    from alembic import command

    command.upgrade(alembic_config(connection), revision)


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """An Alembic configuration built in code; ``env.py`` reads the connection from it."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("file_template", "r%%(rev)s_%%(slug)s")
    config.attributes["connection"] = connection
    return config


def new_revision(message: str, revision_id: str | None = None) -> None:
    """Autogenerate a new revision file from the difference between head and ``tables``."""
    import tempfile

    from alembic import command

    with tempfile.TemporaryDirectory() as scratch:
        engine = sa.create_engine(f"sqlite:///{scratch}/scratch.db")
        with engine.begin() as connection:
            upgrade(connection)
            config = alembic_config(connection)
            command.revision(config, message, autogenerate=True, rev_id=revision_id)
        engine.dispose()
