"""The outbox schema and its migrations.

``meta`` (key → value) holds ``schema_version`` and the ``epoch``.  A migration is a
function that takes the file from version N-1 to N; :func:`migrate` applies the missing
ones in order, each in its own transaction together with the new ``schema_version``, so a
power cut leaves the file at a version it can resume from.  Never edit a released
migration: add the next one.

Version 4 (current)::

    meta(key, value)                schema_version, epoch, created_at
    state                           one row, rewritten by every transaction: last_seq (the seq
                                    counter; seqs are never reused), runtime (outbox runtime
                                    clock), pending_bytes / pending_count (sum of ``size`` and
                                    number of pending events), commits, eviction counters per
                                    reason, disk_full_count, last_publish, exported (events
                                    carried out by ``buffer export --mark-exported``: not lost)
    events(seq, lane, kind, size, runtime, unsynced, body)
                                    body = compact JSON of the wire envelope; a partial index
                                    on the priority lane's seqs (``events_priority``: readings,
                                    the bulk, touch no index), partial index on unsynced events
    evictions(reason, first, last, gap_seq, wall)
                                    recent evicted (or exported) seq ranges (the last
                                    EVICTION_LOG_ROWS)
    salvaged(source, …, last_old_seq)
                                    how far each quarantined file has been salvaged (resumable)
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from edge_agent.outbox.errors import OutboxError
from edge_protocol.wire import uuid7

SCHEMA_VERSION = 4
EVICTION_LOG_ROWS = 1000
PRIORITY_LANE = 0
"""``codec.LANE_CODE["priority"]``, as the partial index ``events_priority`` names it (a
query uses that index only when its ``lane = 0`` is the same literal)."""


class SchemaError(OutboxError):
    """The file is not an outbox this code can use (foreign tables, or a newer schema)."""


def _v1(conn: sqlite3.Connection) -> None:
    """The first release: events and a seq counter in meta."""
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, lane INTEGER NOT NULL, kind TEXT NOT NULL,"
        " size INTEGER NOT NULL, body TEXT NOT NULL)"
    )
    conn.execute("CREATE INDEX events_by_lane ON events (lane, seq)")
    conn.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?)",
        [("epoch", uuid7()), ("created_at", repr(time.time())), ("last_seq", "0")],
    )


def _v2(conn: sqlite3.Connection) -> None:
    """Age cap (runtime clock), clock correction, counters in one row, eviction log, salvage."""
    conn.execute("ALTER TABLE events ADD COLUMN runtime REAL NOT NULL DEFAULT 0")
    conn.execute("ALTER TABLE events ADD COLUMN unsynced INTEGER NOT NULL DEFAULT 0")
    conn.execute("UPDATE events SET unsynced = 1 WHERE json_extract(body, '$.clock') = 'unsynced'")
    conn.execute("CREATE INDEX events_unsynced ON events (unsynced) WHERE unsynced = 1")
    conn.execute(
        """CREATE TABLE state (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            last_seq INTEGER NOT NULL,
            runtime REAL NOT NULL,
            pending_bytes INTEGER NOT NULL,
            pending_count INTEGER NOT NULL,
            commits INTEGER NOT NULL,
            evicted_size_cap INTEGER NOT NULL,
            evicted_age_cap INTEGER NOT NULL,
            evicted_disk_full INTEGER NOT NULL,
            disk_full_count INTEGER NOT NULL,
            last_publish REAL
        )"""
    )
    # Rows from v1 get runtime 0 = "as old as the runtime clock", which restarts at 0 here:
    # their age counts from the upgrade, never from before (conservative).
    conn.execute(
        """INSERT INTO state SELECT 1,
            max(coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'last_seq'), 0),
                coalesce((SELECT max(seq) FROM events), 0)),
            0.0, coalesce((SELECT sum(size) FROM events), 0), (SELECT count(*) FROM events),
            0, 0, 0, 0, 0, NULL"""
    )
    conn.execute("DELETE FROM meta WHERE key = 'last_seq'")
    conn.execute(
        "CREATE TABLE evictions (id INTEGER PRIMARY KEY, reason TEXT NOT NULL, first INTEGER NOT NULL,"
        " last INTEGER NOT NULL, gap_seq INTEGER, wall REAL NOT NULL)"
    )
    conn.execute(
        "CREATE TABLE salvaged (source TEXT PRIMARY KEY, path TEXT NOT NULL, last_old_seq INTEGER NOT NULL,"
        " recovered INTEGER NOT NULL, wall REAL NOT NULL)"
    )


def _v3(conn: sqlite3.Connection) -> None:
    """A counter of events exported and removed (``buffer export --mark-exported``), apart
    from the evictions: they were carried out, not lost."""
    conn.execute("ALTER TABLE state ADD COLUMN exported INTEGER NOT NULL DEFAULT 0")


def _v4(conn: sqlite3.Connection) -> None:
    """The lane index becomes a partial index of the priority lane.  ``(lane, seq)`` was
    rewritten by every commit (one page in three at 5 × 1 Hz, docs/DURABILITY.md "Flash
    wear"); readings are fetched and evicted along the rowid, skipping the few priority
    rows, and priority events (alarms, gaps: few, fetched first) through this index."""
    conn.execute("DROP INDEX IF EXISTS events_by_lane")  # a file someone dropped it from by hand opens too
    conn.execute(f"CREATE INDEX events_priority ON events (seq) WHERE lane = {PRIORITY_LANE}")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1, _v2, _v3, _v4]
"""``MIGRATIONS[n]`` takes the file from version n to n + 1."""
assert len(MIGRATIONS) == SCHEMA_VERSION


def version_of(conn: sqlite3.Connection) -> int:
    """The schema version of an open file: 0 for an empty one; :class:`SchemaError` if foreign."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "meta" not in tables:
        if tables - {"sqlite_sequence"}:
            raise SchemaError(f"not an edge-agent outbox (tables: {', '.join(sorted(tables))})")
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        raise SchemaError("not an edge-agent outbox (meta has no schema_version)")
    return int(row[0])


def check(conn: sqlite3.Connection) -> int:
    """The version of a file this code can use; :class:`SchemaError` if foreign or newer."""
    current = version_of(conn)
    if current > SCHEMA_VERSION:
        raise SchemaError(
            f"schema version {current} is newer than this edge-agent supports ({SCHEMA_VERSION}); "
            "was the software downgraded?"
        )
    return current


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Bring the file to ``target``; returns the version it was at.  ``conn`` is in autocommit."""
    current = check(conn)
    for version in range(current, target):
        conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[version](conn)
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(version + 1),),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return current
