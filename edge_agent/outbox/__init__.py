"""The durable SQLite outbox: events are committed here before anything else happens.

* :class:`Outbox` (store.py): append / fetch / delete, seqs, caps, stats, export; built from
  opening.py (lock, connection), transactions.py (state row, write transactions),
  insert.py (an append's rows), eviction.py (caps, gap events), disk_full.py (SQLITE_FULL),
  deletes.py (acknowledged deletes carried by the next append).
* :class:`OutboxWriter` (writer.py): group commit for concurrent producers, with a commit window.
* :func:`read_stats`, :func:`export_pending` (stats.py): read-only, from another process.
* :func:`salvage` (salvage.py): recover a quarantined file; quarantine itself is in recovery.py.
* schema.py: versioned migrations; page_size.py: the page size and the rebuild of older
  files; codec.py: the stored form; runtime.py: the age clock.

See docs/DURABILITY.md for the durability choices and their measurements.
"""

from edge_agent.outbox.errors import OutboxClosedError, OutboxError, OutboxFullError, OutboxLockedError
from edge_agent.outbox.eviction import LOW_WATER
from edge_agent.outbox.salvage import SalvageReport, salvage
from edge_agent.outbox.schema import SCHEMA_VERSION, SchemaError
from edge_agent.outbox.stats import EvictedRange, OutboxStats, export_pending, read_stats
from edge_agent.outbox.store import Outbox
from edge_agent.outbox.writer import OutboxWriter

__all__ = [
    "LOW_WATER",
    "SCHEMA_VERSION",
    "EvictedRange",
    "Outbox",
    "OutboxClosedError",
    "OutboxError",
    "OutboxFullError",
    "OutboxLockedError",
    "OutboxStats",
    "OutboxWriter",
    "SalvageReport",
    "SchemaError",
    "export_pending",
    "read_stats",
    "salvage",
]
