"""Where modelyard keeps what it knows: the metadata database and the artifact store.

    Database        SQL metadata (SQLite by default, PostgreSQL by URL), migrated on first use
    ArtifactStore   content-addressed blobs (sha256) in a folder or on an object store
    Blob            what a put returns: digest and size
    tables          the schema, one class per table (``modelyard.store.tables``)
    concurrency     get_or_create, lock_for_update, next_version for concurrent writers
    new_id, utcnow  ULID record ids and the UTC clock every record uses

Importing this package is cheap: Alembic loads only when a database needs
upgrading, and fsspec only when an artifact store is opened.
"""

from __future__ import annotations

from modelyard.store.artifacts import ArtifactStore, Blob
from modelyard.store.concurrency import get_or_create, lock_for_update, next_version
from modelyard.store.database import Database
from modelyard.store.ids import new_id, utcnow

__all__ = [
    "ArtifactStore",
    "Blob",
    "Database",
    "get_or_create",
    "lock_for_update",
    "new_id",
    "next_version",
    "utcnow",
]
