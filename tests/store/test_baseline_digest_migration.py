"""Revision 0005 adds ``model_versions.baseline_digest`` and keeps every existing row."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from modelyard.store import Database, migration
from modelyard.store.tables import ModelAlias, ModelVersion

T = "2026-03-01 12:00:00"


def _columns(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return {c["name"] for c in sa.inspect(engine).get_columns("model_versions")}
    finally:
        engine.dispose()


def _database_at_0004_with_a_version(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        migration.upgrade(connection, "0004")
        for statement in (
            "INSERT INTO projects (id, name, created_at) VALUES ('P1', 'old', :t)",
            "INSERT INTO runs (id, project_id, name, kind, status, started_at) "
            "VALUES ('R1', 'P1', 'first', 'train', 'finished', :t)",
            "INSERT INTO registered_models (id, project_id, name, created_at) "
            "VALUES ('M1', 'P1', 'loans', :t)",
            "INSERT INTO model_versions (id, model_id, version, run_id, flavor, digest, stage, "
            "metrics, created_at) VALUES ('V1', 'M1', 1, 'R1', 'lightgbm', :digest, "
            "'production', '{\"roc_auc\": 0.91}', :t)",
            "INSERT INTO model_aliases (model_id, alias, model_version_id) "
            "VALUES ('M1', 'champion', 'V1')",
        ):
            connection.execute(sa.text(statement), {"t": T, "digest": "a" * 64})
    engine.dispose()


def test_upgrade_from_0004_keeps_versions_and_adds_an_empty_baseline(db_url: str) -> None:
    _database_at_0004_with_a_version(db_url)
    assert "baseline_digest" not in _columns(db_url)

    db = Database(db_url)
    with db.write() as session:
        row = session.get_one(ModelVersion, "V1")
        assert (row.version, row.run_id, row.digest, row.stage) == (1, "R1", "a" * 64, "production")
        assert row.metrics == {"roc_auc": 0.91} and row.baseline_digest is None
        assert session.get_one(ModelAlias, ("M1", "champion")).model_version_id == "V1"
        row.baseline_digest = "b" * 64
    with db.read() as session:
        assert session.get_one(ModelVersion, "V1").baseline_digest == "b" * 64
    db.dispose()


def test_downgrade_to_0004_drops_the_column_and_keeps_the_row(db_url: str) -> None:
    _database_at_0004_with_a_version(db_url)
    engine = sa.create_engine(db_url)
    with engine.begin() as connection:
        migration.upgrade(connection, "0005")
    assert "baseline_digest" in _columns(db_url)
    with engine.begin() as connection:
        command.downgrade(migration.alembic_config(connection), "0004")
    with engine.connect() as connection:
        kept = connection.execute(sa.text("SELECT id, digest FROM model_versions")).all()
    engine.dispose()
    assert "baseline_digest" not in _columns(db_url)
    assert [tuple(r) for r in kept] == [("V1", "a" * 64)]
