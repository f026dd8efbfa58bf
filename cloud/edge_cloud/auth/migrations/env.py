"""Alembic environment: the connection comes from ``edge_cloud.auth.migrate`` (config attribute)."""

from __future__ import annotations

from alembic import context

from edge_cloud.auth.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
