"""The ingest database, as SQLAlchemy Core tables (the schema is made by the Alembic
migrations in ``migrations/``; keep both in step).

One event is stored once: ``event_ids`` is the ledger keyed on ``(device_id, id)`` that
every insert goes through (insert-or-ignore), and only an event new to it is written to
the table of its kind.  A reading becomes one row per quantity in ``readings`` (the shape
"one device, one sensor, one quantity, a time range" wants), keyed by its ``series``
(an integer standing for ``(device_id, sensor, quantity)``), the other kinds a row each
in ``test_results``, ``alarms``, ``status_events`` and ``gaps``.  ``received_ranges``
holds, per device and epoch, the seq ranges stored, merged, so the API can say which seqs
are missing and which of those a ``gap`` event reported evicted.

Times are ``TIMESTAMP WITH TIME ZONE`` (UTC) on PostgreSQL and ISO text on SQLite
(SQLAlchemy's ``DateTime(timezone=True)``): event time (``ts``) is what queries range
over.  On PostgreSQL ``readings`` is partitioned by ``ts`` (declarative range
partitioning, made by the migration; partitions are added ahead of time and dropped for
retention by the service).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

DEVICE_ID = sa.String(64)
EPOCH = sa.String(64)
EVENT_ID = sa.String(36)
SENSOR = sa.String(64)
TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(JSONB(), "postgresql")

devices = sa.Table(
    "devices",
    metadata,
    sa.Column("device_id", DEVICE_ID, primary_key=True),
    sa.Column("first_seen", TS, nullable=False, comment="When the ingest first stored an event of it"),
    sa.Column("last_seen", TS, nullable=False, comment="Receive time of its latest message"),
    sa.Column("online", sa.Boolean, comment="From its retained status topic; NULL: never heard"),
    sa.Column("status_at", TS, comment="When the online/offline state last changed"),
    sa.Column("boot", sa.String(64), comment="Boot id of its latest birth message"),
    sa.Column("epoch", EPOCH, comment="Outbox epoch of its latest birth message"),
    sa.Column("pending_events", sa.BigInteger, comment="Outbox backlog the device last reported"),
    sa.Column(
        "evicted_events", sa.BigInteger, nullable=False, server_default="0", comment="Sum of its gap reports"
    ),
    sa.Column(
        "dropped_events",
        sa.BigInteger,
        nullable=False,
        server_default="0",
        comment="Sum of its not_committed gap reports (events never given a seq)",
    ),
)

event_ids = sa.Table(
    "event_ids",
    metadata,
    sa.Column("device_id", DEVICE_ID, primary_key=True),
    sa.Column("id", EVENT_ID, primary_key=True, comment="The envelope's UUIDv7: the de-duplication key"),
    sa.Column("epoch", EPOCH, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("received_at", TS, nullable=False),
)

series = sa.Table(
    "series",
    metadata,
    sa.Column("series_id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("device_id", DEVICE_ID, nullable=False),
    sa.Column("sensor", SENSOR, nullable=False),
    sa.Column("quantity", sa.String(64), nullable=False),
    sa.UniqueConstraint("device_id", "sensor", "quantity"),
    comment="One per (device, sensor, quantity) ever read: readings carry its id, not the three names",
)

readings = sa.Table(
    "readings",
    metadata,
    # No foreign key to series: its check would be one more index probe per row written.
    sa.Column("series_id", sa.Integer, nullable=False),
    sa.Column("ts", TS, nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("event_id", EVENT_ID, nullable=False, comment="Its epoch and seq are in event_ids"),
    sa.Column("clock_synced", sa.Boolean, nullable=False),
    sa.Column("cal", sa.BigInteger, comment="Id of the calibration applied to this value, if any"),
    # The range query and its keyset cursor, (ts, event_id) within a series: event_id is
    # left out of the index (ties on ts are rare; the planner sorts them), which makes
    # each row's index entry half as wide.
    sa.Index("ix_readings_series", "series_id", "ts"),
)

test_results = sa.Table(
    "test_results",
    metadata,
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
    sa.PrimaryKeyConstraint("device_id", "event_id"),
    sa.Index("ix_test_results_device_ts", "device_id", "ts"),
    sa.Index("ix_test_results_device_status_ts", "device_id", "status", "ts"),
)

alarms = sa.Table(
    "alarms",
    metadata,
    sa.Column("device_id", DEVICE_ID, nullable=False),
    sa.Column("event_id", EVENT_ID, nullable=False),
    sa.Column("ts", TS, nullable=False),
    sa.Column("sensor", SENSOR),
    sa.Column("code", sa.String(64), nullable=False),
    sa.Column("data", JSON, nullable=False),
    sa.PrimaryKeyConstraint("device_id", "event_id"),
    sa.Index("ix_alarms_device_ts", "device_id", "ts"),
)

status_events = sa.Table(
    "status_events",
    metadata,
    sa.Column("device_id", DEVICE_ID, nullable=False),
    sa.Column("event_id", EVENT_ID, nullable=False),
    sa.Column("ts", TS, nullable=False),
    sa.Column("sensor", SENSOR),
    sa.Column("event", sa.String(64), nullable=False, comment="data.event: sensor_health, config_reload, …"),
    sa.Column("data", JSON, nullable=False),
    sa.PrimaryKeyConstraint("device_id", "event_id"),
    sa.Index("ix_status_events_device_ts", "device_id", "ts"),
)

gaps = sa.Table(
    "gaps",
    metadata,
    sa.Column("device_id", DEVICE_ID, nullable=False),
    sa.Column("epoch", EPOCH, nullable=False, comment="The epoch the evicted seqs belong to"),
    sa.Column("first_seq", sa.BigInteger, nullable=False),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.String(16), nullable=False, comment="size_cap | age_cap | disk_full"),
    sa.Column("event_id", EVENT_ID, nullable=False, comment="The gap event that reported them"),
    sa.Column("ts", TS, nullable=False),
    sa.Index("ix_gaps_device_epoch", "device_id", "epoch", "first_seq"),
)

received_ranges = sa.Table(
    "received_ranges",
    metadata,
    sa.Column("device_id", DEVICE_ID, nullable=False),
    sa.Column("epoch", EPOCH, nullable=False),
    sa.Column("first_seq", sa.BigInteger, nullable=False),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
    sa.PrimaryKeyConstraint("device_id", "epoch", "first_seq"),
)

quarantine = sa.Table(
    "quarantine",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("received_at", TS, nullable=False),
    sa.Column("topic", sa.String(256), nullable=False),
    sa.Column("device_id", DEVICE_ID, comment="From the topic, when it names one"),
    sa.Column(
        "reason", sa.String(32), nullable=False, comment="spoofed | malformed | schema | oversized | …"
    ),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("size", sa.Integer, nullable=False, comment="Payload bytes as received"),
    sa.Column("head", sa.LargeBinary, nullable=False, comment="The first bytes of the payload"),
    sa.Index("ix_quarantine_received_at", "received_at"),
)
