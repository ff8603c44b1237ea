"""Alembic environment: runs on the connection `hmt.store.migrate` hands it."""

from __future__ import annotations

from alembic import context

from hmt.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `hmt db upgrade` or hmt.store.migrate")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
