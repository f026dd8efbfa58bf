"""Bring the ingest database to the newest schema (Alembic, from the packaged migrations).

``readings``'s partitions on PostgreSQL (``readings_default``, ``readings_p…``) are made
and dropped by ``edge_cloud.ingest.partitions``, not by migrations; :func:`include_name`
keeps them out of Alembic's comparisons with ``tables.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
PARTITION_PREFIX = "readings_"


def upgrade(engine: Engine, revision: str = "head") -> None:
    with engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Alembic's filter: a partition of ``readings`` (and its indexes) is not a table of ``tables.py``."""
    return not (type_ == "table" and name is not None and name.startswith(PARTITION_PREFIX))
