"""Initial schema: devices, the event_ids ledger, readings (partitioned by ts on
PostgreSQL), test_results, alarms, status_events, gaps, received_ranges, quarantine.

Revision ID: 0001
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

DEVICE_ID = sa.String(64)
EPOCH = sa.String(64)
EVENT_ID = sa.String(36)
SENSOR = sa.String(64)
TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    # Range partitions by event time (edge_cloud.ingest.partitions adds them ahead of time
    # and drops them for retention); the default partition takes any ts no partition
    # covers (an unsynced clock in 1970, a clock far ahead): never lost.
    partitioned: dict[str, Any] = {"postgresql_partition_by": "RANGE (ts)"} if postgres else {}
    op.create_table(
        "devices",
        sa.Column("device_id", DEVICE_ID, nullable=False),
        sa.Column("first_seen", TS, nullable=False, comment="When the ingest first stored an event of it"),
        sa.Column("last_seen", TS, nullable=False, comment="Receive time of its latest message"),
        sa.Column("online", sa.Boolean, comment="From its retained status topic; NULL: never heard"),
        sa.Column("status_at", TS, comment="When the online/offline state last changed"),
        sa.Column("boot", sa.String(64), comment="Boot id of its latest birth message"),
        sa.Column("epoch", EPOCH, comment="Outbox epoch of its latest birth message"),
        sa.Column("pending_events", sa.BigInteger, comment="Outbox backlog the device last reported"),
        sa.Column(
            "evicted_events",
            sa.BigInteger,
            nullable=False,
            server_default="0",
            comment="Sum of its gap reports",
        ),
        sa.PrimaryKeyConstraint("device_id", name="pk_devices"),
    )
    op.create_table(
        "event_ids",
        sa.Column("device_id", DEVICE_ID, nullable=False),
        sa.Column("id", EVENT_ID, nullable=False, comment="The envelope's UUIDv7: the de-duplication key"),
        sa.Column("epoch", EPOCH, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("device_id", "id", name="pk_event_ids"),
    )
    op.create_table(
        "readings",
        sa.Column("device_id", DEVICE_ID, nullable=False),
        sa.Column("sensor", SENSOR, nullable=False),
        sa.Column("quantity", sa.String(64), nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("event_id", EVENT_ID, nullable=False),
        sa.Column("epoch", EPOCH, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("clock_synced", sa.Boolean, nullable=False),
        sa.Column("cal", sa.BigInteger, comment="Id of the calibration applied to this value, if any"),
        **partitioned,
    )
    op.create_index("ix_readings_series", "readings", ["device_id", "sensor", "quantity", "ts", "event_id"])
    if postgres:
        op.execute("CREATE TABLE readings_default PARTITION OF readings DEFAULT")
    op.create_table(
        "test_results",
        sa.Column("device_id", DEVICE_ID, nullable=False),
        sa.Column("event_id", EVENT_ID, nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("sensor", SENSOR),
        sa.Column("test", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(8), nullable=False, comment="pass | fail | error"),
        sa.Column("trigger", sa.String(16)),
        sa.Column("detail", sa.Text),
        sa.Column("data", JSON, nullable=False, comment="The whole test_result data"),
        sa.PrimaryKeyConstraint("device_id", "event_id", name="pk_test_results"),
    )
    op.create_index("ix_test_results_device_ts", "test_results", ["device_id", "ts"])
    op.create_index("ix_test_results_device_status_ts", "test_results", ["device_id", "status", "ts"])
    op.create_table(
        "alarms",
        sa.Column("device_id", DEVICE_ID, nullable=False),
        sa.Column("event_id", EVENT_ID, nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("sensor", SENSOR),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.PrimaryKeyConstraint("device_id", "event_id", name="pk_alarms"),
    )
    op.create_index("ix_alarms_device_ts", "alarms", ["device_id", "ts"])
    op.create_table(
        "status_events",
        sa.Column("device_id", DEVICE_ID, nullable=False),
        sa.Column("event_id", EVENT_ID, nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("sensor", SENSOR),
        sa.Column(
            "event",
            sa.String(64),
            nullable=False,
            comment="data.event: sensor_health, config_reload, …",
        ),
        sa.Column("data", JSON, nullable=False),
        sa.PrimaryKeyConstraint("device_id", "event_id", name="pk_status_events"),
    )
    op.create_index("ix_status_events_device_ts", "status_events", ["device_id", "ts"])
    op.create_table(
        "gaps",
        sa.Column("device_id", DEVICE_ID, nullable=False),
        sa.Column("epoch", EPOCH, nullable=False, comment="The epoch the evicted seqs belong to"),
        sa.Column("first_seq", sa.BigInteger, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.String(16), nullable=False, comment="size_cap | age_cap | disk_full"),
        sa.Column("event_id", EVENT_ID, nullable=False, comment="The gap event that reported them"),
        sa.Column("ts", TS, nullable=False),
    )
    op.create_index("ix_gaps_device_epoch", "gaps", ["device_id", "epoch", "first_seq"])
    op.create_table(
        "received_ranges",
        sa.Column("device_id", DEVICE_ID, nullable=False),
        sa.Column("epoch", EPOCH, nullable=False),
        sa.Column("first_seq", sa.BigInteger, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("device_id", "epoch", "first_seq", name="pk_received_ranges"),
    )
    op.create_table(
        "quarantine",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("topic", sa.String(256), nullable=False),
        sa.Column("device_id", DEVICE_ID, comment="From the topic, when it names one"),
        sa.Column(
            "reason",
            sa.String(32),
            nullable=False,
            comment="spoofed | malformed | schema | oversized | …",
        ),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("size", sa.Integer, nullable=False, comment="Payload bytes as received"),
        sa.Column("head", sa.LargeBinary, nullable=False, comment="The first bytes of the payload"),
        sa.PrimaryKeyConstraint("id", name="pk_quarantine"),
    )
    op.create_index("ix_quarantine_received_at", "quarantine", ["received_at"])


def downgrade() -> None:
    for table in (
        "quarantine",
        "received_ranges",
        "gaps",
        "status_events",
        "alarms",
        "test_results",
        "readings",
        "event_ids",
        "devices",
    ):
        op.drop_table(table)
