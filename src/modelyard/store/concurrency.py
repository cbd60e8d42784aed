"""Writing safely when several processes write at once.

Each helper runs inside ``db.write()`` and works the same on SQLite (where
``BEGIN IMMEDIATE`` already lets one writer in at a time) and PostgreSQL
(where writers run side by side and must take row locks):

- ``get_or_create`` finds a row by its unique key or inserts it, without the
  race in "select, then insert if missing" that makes the slower of two
  writers fail.
- ``lock_for_update`` locks a parent row until the transaction ends, so
  writers that change things under the same parent queue behind each other.
- ``next_version`` combines the lock with "highest number + 1", which is how
  dataset and model versions get numbers without gaps or duplicates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import InstrumentedAttribute, Session

from modelyard.errors import NotFoundError

T = TypeVar("T")


def get_or_create(session: Session, model: type[T], key: Mapping[str, Any], **values: Any) -> T:
    """The ``model`` row whose unique ``key`` columns match, inserted with ``values`` if new.

    ``key`` must be exactly the columns of a unique constraint, e.g.
    ``{"project_id": pid, "name": "loans"}`` for ``Dataset``. Ids and
    timestamps get their column defaults.
    """
    query = sa.select(model).filter_by(**key)
    found = session.scalars(query).one_or_none()
    if found is not None:
        return found
    session.execute(_insert_if_absent(session, model, key, values))
    return session.scalars(query).one()


def lock_for_update(session: Session, obj: T) -> T:
    """Lock ``obj``'s row until the transaction ends and return it, freshly loaded.

    ``obj`` may come from another session; the returned object belongs to
    this one. Raises ``NotFoundError`` if the row was deleted meanwhile.
    """
    state = sa.inspect(obj)
    locked = session.get(type(obj), state.identity, with_for_update=True, populate_existing=True)
    if locked is None:
        raise NotFoundError(
            f"{type(obj).__name__} {state.identity} no longer exists; another process "
            "deleted it. Reload and retry."
        )
    return locked


def next_version(
    session: Session,
    parent: object,
    version: InstrumentedAttribute[int],
    parent_key: InstrumentedAttribute[str],
) -> int:
    """Lock ``parent`` and return one more than the highest ``version`` under it (1 if none).

    Example: ``next_version(session, dataset, DatasetVersion.version,
    DatasetVersion.dataset_id)``. Insert the new row in the same transaction;
    the lock is held until it commits, so the next writer sees your number.
    """
    locked = lock_for_update(session, parent)
    (parent_id,) = sa.inspect(locked).identity
    highest = session.scalar(sa.select(sa.func.max(version)).where(parent_key == parent_id))
    return (highest or 0) + 1


def _insert_if_absent(
    session: Session, model: type[Any], key: Mapping[str, Any], values: Mapping[str, Any]
) -> sa.Executable:
    """INSERT ... ON CONFLICT (key) DO NOTHING, which both backends support."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(model).values(**key, **values).on_conflict_do_nothing(index_elements=list(key))
