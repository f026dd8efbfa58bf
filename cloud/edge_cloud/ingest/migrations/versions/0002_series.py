"""Readings keyed by series: a ``series`` table (an integer per ``(device_id, sensor,
quantity)``); ``readings`` carries ``series_id`` instead of the three names, and no
``epoch``/``seq`` (the ledger, ``event_ids``, holds them); its index is ``(series_id, ts)``.

The rows are kept: ``readings`` is rebuilt in the new shape and its rows moved, one
partition at a time on PostgreSQL (each old partition detached, a new one made with the
same name and bounds, its rows copied, the old one dropped), so partition management
finds the partitions it made.  One transaction: PostgreSQL frees the old files at the
commit, so the upgrade needs as much free disk as ``readings`` takes.  The downgrade does
the reverse, taking epoch and seq from the ledger.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

DEVICE_ID = sa.String(64)
EPOCH = sa.String(64)
EVENT_ID = sa.String(36)
SENSOR = sa.String(64)
TS = sa.DateTime(timezone=True)
OLD = "readings_v0"
"""The table being replaced, while its rows move (``readings_``: not a table of ``tables.py``)."""

_TO_SERIES = (
    "SELECT s.series_id, r.ts, r.value, r.event_id, r.clock_synced, r.cal FROM {old} r "
    "JOIN series s ON s.device_id = r.device_id AND s.sensor = r.sensor AND s.quantity = r.quantity"
)
_FROM_SERIES = (
    "SELECT s.device_id, s.sensor, s.quantity, r.ts, r.value, r.event_id, e.epoch, e.seq, r.clock_synced, "
    "r.cal FROM {old} r JOIN series s ON s.series_id = r.series_id "
    "JOIN event_ids e ON e.device_id = s.device_id AND e.id = r.event_id"
)


def _cal() -> sa.Column[Any]:
    return sa.Column("cal", sa.BigInteger, comment="Id of the calibration applied to this value, if any")


def _series_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("series_id", sa.Integer, nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("event_id", EVENT_ID, nullable=False, comment="Its epoch and seq are in event_ids"),
        sa.Column("clock_synced", sa.Boolean, nullable=False),
        _cal(),
    ]


def _named_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("device_id", DEVICE_ID, nullable=False),
        sa.Column("sensor", SENSOR, nullable=False),
        sa.Column("quantity", sa.String(64), nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("event_id", EVENT_ID, nullable=False),
        sa.Column("epoch", EPOCH, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("clock_synced", sa.Boolean, nullable=False),
        _cal(),
    ]


def upgrade() -> None:
    op.create_table(
        "series",
        sa.Column("series_id", sa.Integer, sa.Identity(), nullable=False),
        sa.Column("device_id", DEVICE_ID, nullable=False),
        sa.Column("sensor", SENSOR, nullable=False),
        sa.Column("quantity", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("series_id", name="pk_series"),
        sa.UniqueConstraint("device_id", "sensor", "quantity", name="uq_series_device_id_sensor_quantity"),
        comment="One per (device, sensor, quantity) ever read: readings carry its id, not the three names",
    )
    op.execute(
        "INSERT INTO series (device_id, sensor, quantity) "
        "SELECT DISTINCT device_id, sensor, quantity FROM readings ORDER BY device_id, sensor, quantity"
    )
    _rebuild(_series_columns(), ["series_id", "ts"], _TO_SERIES)


def downgrade() -> None:
    _rebuild(_named_columns(), ["device_id", "sensor", "quantity", "ts", "event_id"], _FROM_SERIES)
    op.drop_table("series")


def _rebuild(columns: list[sa.Column[Any]], index: list[str], select: str) -> None:
    """``readings`` made again with ``columns`` and ``ix_readings_series`` on ``index``, its
    rows moved by ``select`` (over ``{old}``, aliased ``r``)."""
    postgres = op.get_bind().dialect.name == "postgresql"
    op.rename_table("readings", OLD)
    # Index names are per schema: the old one must make way for the new.
    if postgres:
        op.execute(f"ALTER INDEX ix_readings_series RENAME TO ix_{OLD}_series")
    else:
        op.drop_index("ix_readings_series", table_name=OLD)
    partitioned: dict[str, Any] = {"postgresql_partition_by": "RANGE (ts)"} if postgres else {}
    op.create_table("readings", *columns, **partitioned)
    op.create_index("ix_readings_series", "readings", index)
    names = ", ".join(c.name for c in columns)
    if not postgres:
        op.execute(f"INSERT INTO readings ({names}) {select.format(old=OLD)}")
    else:
        found = op.get_bind().execute(
            sa.text(
                "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
                f"JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = '{OLD}'::regclass"
            )
        )
        for name, bound in list(found):
            moving = f'"{name}_v0"'
            op.execute(f'ALTER TABLE {OLD} DETACH PARTITION "{name}"')
            op.execute(f'ALTER TABLE "{name}" RENAME TO {moving}')
            op.execute(f'CREATE TABLE "{name}" PARTITION OF readings {bound}')
            op.execute(f'INSERT INTO "{name}" ({names}) {select.format(old=moving)}')
            op.execute(f"DROP TABLE {moving}")
    op.drop_table(OLD)
