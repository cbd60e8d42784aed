"""Alembic environment and revisions for the metadata schema (see ``store/migration.py``)."""
