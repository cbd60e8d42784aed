"""Alembic's entry point: run the revisions on the connection modelyard passes in.

``modelyard.store.migration`` builds the configuration in code and puts an
open connection, already inside a transaction, in ``config.attributes``;
this file never opens a connection or commits by itself.
"""

from __future__ import annotations

from alembic import context

from modelyard.store.tables import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "modelyard migrations run through modelyard.store.migration, which passes a connection; "
        "use migration.upgrade(connection) or migration.new_revision(message)."
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
