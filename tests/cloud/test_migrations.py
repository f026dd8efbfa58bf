"""The Alembic migrations make exactly the schema ``edge_cloud.auth.tables`` declares."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from edge_cloud.auth import migrate
from edge_cloud.auth.tables import metadata
from edge_cloud.common.db import make_engine


def test_migrated_schema_matches_the_tables_and_upgrade_is_idempotent(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate.upgrade(engine)
        migrate.upgrade(engine)  # every start runs it
        assert migrate.current_revision(engine) == "0003"
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == []
    finally:
        engine.dispose()
