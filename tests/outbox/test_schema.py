"""Migrations: a file written by an older release opens with the current code."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from edge_agent.events import NewEvent
from edge_agent.outbox import SCHEMA_VERSION, read_stats
from edge_agent.outbox.codec import encode
from edge_agent.outbox.schema import MIGRATIONS, migrate, version_of

from .helpers import BOOT, alarm, check_wire, open_outbox, reading, seqs


def _v1_file(path: Path) -> tuple[str, list[str]]:
    """A file as release 1 left it: events 4 and 5 pending, 1-3 acknowledged, counter at 7."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    assert migrate(conn, target=1) == 0
    epoch = conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()[0]
    events = [reading(4), NewEvent.now("reading", "s", {"v": 1.0}, boot=BOOT, clock="unsynced", mono=12.5)]
    ids = []
    for seq, event in zip((4, 5), events, strict=True):
        body, size = encode(event, epoch).body(seq)
        conn.execute(
            "INSERT INTO events (seq, lane, kind, size, body) VALUES (?, 1, 'reading', ?, ?)",
            (seq, size, body),
        )
        ids.append(event.id)
    conn.execute("UPDATE meta SET value = '7' WHERE key = 'last_seq'")
    conn.close()
    return epoch, ids


def test_a_v1_file_opens_with_the_current_code(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    epoch, ids = _v1_file(path)

    async def main() -> None:
        outbox = await open_outbox(path)
        assert outbox.quarantined is None
        assert outbox.epoch == epoch  # same database, same epoch
        assert outbox.next_seq == 8  # the v1 counter carried over: 6 and 7 are never reused
        pending = await outbox.fetch("readings")
        assert seqs(pending) == [4, 5]
        assert [e.envelope["id"] for e in pending] == ids
        for event in pending:
            check_wire(event)
        assert outbox.pending_bytes == sum(e.size for e in pending)
        assert seqs(await outbox.append([reading(8)])) == [8]
        # The unsynced flag was derived from the v1 bodies: the correction still works.
        assert await outbox.correct_unsynced(BOOT, 1_800_000_000.0) == 1
        await outbox.close()

    asyncio.run(main())
    conn = sqlite3.connect(path)
    assert version_of(conn) == SCHEMA_VERSION
    conn.close()
    stats = read_stats(path)
    assert stats.schema_version == SCHEMA_VERSION and stats.pending == 3


def test_migrations_are_ordered_and_a_fresh_file_is_current(tmp_path: Path) -> None:
    assert len(MIGRATIONS) == SCHEMA_VERSION
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    assert version_of(conn) == 0
    assert migrate(conn) == 0
    assert version_of(conn) == SCHEMA_VERSION
    assert migrate(conn) == SCHEMA_VERSION  # nothing left to do
    conn.close()


def test_a_v3_file_gets_the_priority_index_and_keeps_both_lanes(tmp_path: Path) -> None:
    """Version 4 replaces the ``(lane, seq)`` index by a partial one on the priority lane."""
    path = tmp_path / "outbox.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    assert migrate(conn, target=3) == 0
    epoch = conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()[0]
    rows = [
        (seq, 0 if seq % 3 == 0 else 1, alarm(seq) if seq % 3 == 0 else reading(seq)) for seq in range(1, 10)
    ]
    for seq, lane, event in rows:
        body, size = encode(event, epoch).body(seq)
        conn.execute(
            "INSERT INTO events (seq, lane, kind, size, body) VALUES (?, ?, ?, ?, ?)",
            (seq, lane, event.kind, size, body),
        )
    conn.execute("UPDATE state SET last_seq = 9, pending_count = 9, pending_bytes = 0")
    conn.close()

    async def main() -> None:
        outbox = await open_outbox(path)
        assert seqs(await outbox.fetch("priority")) == [3, 6, 9]
        assert seqs(await outbox.fetch("readings", after_seq=1)) == [2, 4, 5, 7, 8]
        await outbox.close()

    asyncio.run(main())
    conn = sqlite3.connect(path)
    indexes = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'events'")}
    conn.close()
    assert "events_by_lane" not in indexes and "events_priority" in indexes
    stats = read_stats(path)
    assert stats.pending_by_lane == {"priority": 3, "readings": 6}
    assert stats.pending_by_kind == {"alarm": 3, "reading": 6}
