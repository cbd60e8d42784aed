"""The store package's public names."""

from __future__ import annotations

import modelyard.store


def test_public_api_is_listed_once() -> None:
    assert sorted(modelyard.store.__all__) == [
        "ArtifactStore",
        "Blob",
        "Database",
        "get_or_create",
        "lock_for_update",
        "new_id",
        "next_version",
        "utcnow",
    ]
    for name in modelyard.store.__all__:
        assert getattr(modelyard.store, name) is not None


def test_tables_module_is_importable_by_its_path() -> None:
    from modelyard.store import tables

    assert "runs" in tables.Base.metadata.tables
