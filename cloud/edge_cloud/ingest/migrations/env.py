"""Alembic environment: the connection comes from ``edge_cloud.ingest.migrate`` (config attribute)."""

from __future__ import annotations

from alembic import context

from edge_cloud.ingest.migrate import include_name
from edge_cloud.ingest.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection, target_metadata=metadata, render_as_batch=True, include_name=include_name
)
with context.begin_transaction():
    context.run_migrations()
