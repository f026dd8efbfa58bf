"""The outbox's core promises: seqs, epochs, lanes, deletes, waiting, the wire form."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge_agent.events import NewEvent
from edge_agent.outbox import Outbox, OutboxClosedError, OutboxLockedError, read_stats
from edge_agent.outbox.codec import LANE_CODE
from edge_agent.outbox.store import FETCH_SQL
from edge_protocol.wire import Envelope, EventKind, rfc3339_ms

from .helpers import BOOT, alarm, check_wire, open_outbox, reading, seqs


def test_append_assigns_increasing_seqs_and_returns_the_wire_form(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db")
        assert outbox.next_seq == 1
        events = [reading(1), alarm(2), NewEvent.now("status", None, {"note": "héllo ✓"}, boot=BOOT)]
        stored = await outbox.append(events)
        assert seqs(stored) == [1, 2, 3]
        assert outbox.next_seq == 4
        for new, event in zip(events, stored, strict=True):
            envelope = check_wire(event)
            assert envelope.id == new.id and envelope.epoch == outbox.epoch and envelope.boot == BOOT
            assert envelope.data == new.data and envelope.ts == new.ts and envelope.mono == new.mono
        # What fetch reads back from the file is the same envelope, byte for byte.
        fetched = await outbox.fetch("priority") + await outbox.fetch("readings")
        by_seq = {e.seq: e for e in fetched}
        for event in stored:
            assert by_seq[event.seq].envelope == event.envelope
            assert by_seq[event.seq].size == event.size
        assert list(by_seq[3].envelope) == list(Envelope.model_fields)  # documented key order
        await outbox.close()

    asyncio.run(main())


def test_seq_survives_reopen_and_deletes_and_is_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "o.db"

    async def main() -> None:
        outbox = await open_outbox(path)
        epoch = outbox.epoch
        first = await outbox.append([reading(i) for i in range(5)])
        assert await outbox.delete(seqs(first)) == 5  # everything acknowledged: the table is empty
        await outbox.close()

        outbox = await open_outbox(path)
        assert outbox.epoch == epoch  # same file, same epoch
        assert outbox.next_seq == 6
        second = await outbox.append([reading(9)])
        assert seqs(second) == [6]
        await outbox.close()

        # Even a file closed without persisting anything else keeps the counter: it is
        # written in the same transaction as the events.
        conn = sqlite3.connect(path)
        assert conn.execute("SELECT last_seq FROM state").fetchone()[0] == 6
        conn.close()

    asyncio.run(main())


def test_a_new_file_is_a_new_epoch(tmp_path: Path) -> None:
    async def main() -> None:
        a = await open_outbox(tmp_path / "a.db")
        b = await open_outbox(tmp_path / "b.db")
        assert a.epoch != b.epoch
        await a.close()
        await b.close()
        (tmp_path / "a.db").unlink()
        again = await open_outbox(tmp_path / "a.db")
        assert again.epoch not in (a.epoch, b.epoch)
        assert again.next_seq == 1
        await again.close()

    asyncio.run(main())


def test_lanes_order_and_bounds(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db")
        kinds: list[EventKind] = [
            "reading",
            "alarm",
            "reading",
            "test_result",
            "gap",
            "reading",
            "status",
            "reading",
        ]
        for i, kind in enumerate(kinds):
            await outbox.append(
                [NewEvent.now(kind, None if kind in ("gap", "status") else "s", {"i": i}, boot=BOOT)]
            )
        assert seqs(await outbox.fetch("priority")) == [2, 4, 5, 7]
        assert seqs(await outbox.fetch("readings")) == [1, 3, 6, 8]
        assert seqs(await outbox.fetch("readings", after_seq=3)) == [6, 8]
        assert seqs(await outbox.fetch("readings", after_seq=1, before_seq=8)) == [3, 6]
        assert seqs(await outbox.fetch("readings", limit=2)) == [1, 3]
        assert await outbox.fetch("priority", after_seq=7) == []
        assert all(e.lane == "priority" for e in await outbox.fetch("priority"))
        await outbox.close()

    asyncio.run(main())


def test_fetch_by_lane_uses_the_priority_index_or_the_rowid(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db")
        await outbox.close()

    asyncio.run(main())
    conn = sqlite3.connect(tmp_path / "o.db")
    plans = {
        lane: str(conn.execute("EXPLAIN QUERY PLAN " + FETCH_SQL.format(lane=code), (0, 10, 10)).fetchall())
        for lane, code in LANE_CODE.items()
    }
    indexes = {
        name
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'"
        )
    }
    conn.close()
    assert "USING INDEX events_priority" in plans["priority"]
    assert "USING INTEGER PRIMARY KEY" in plans["readings"]
    assert "TEMP B-TREE" not in str(plans)
    # Readings, the bulk, touch no index: the two left are partial (priority lane, unsynced clock).
    assert indexes == {"events_priority", "events_unsynced"}


def test_delete_is_idempotent_and_counts_rows(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db")
        stored = await outbox.append([reading(i) for i in range(10)])
        total = sum(e.size for e in stored)
        assert outbox.pending_bytes == total
        assert await outbox.delete([2, 3, 3, 9, 100]) == 3
        assert await outbox.delete([2, 3, 9]) == 0
        assert await outbox.delete([]) == 0
        assert seqs(await outbox.fetch("readings")) == [1, 4, 5, 6, 7, 8, 10]
        assert outbox.pending_count == 7
        assert outbox.pending_bytes == total - sum(e.size for e in stored if e.seq in (2, 3, 9))
        await outbox.close()

    asyncio.run(main())


def test_wait_for_events(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db")
        loop = asyncio.get_running_loop()
        start = loop.time()
        assert await outbox.wait_for_events(0, timeout=0.05) is False
        assert loop.time() - start >= 0.05

        waiter = asyncio.create_task(outbox.wait_for_events(0, timeout=5))
        await asyncio.sleep(0.01)
        assert not waiter.done()
        await outbox.append([reading()])
        assert await asyncio.wait_for(waiter, 1) is True
        assert await outbox.wait_for_events(0, timeout=0) is True  # already there: no waiting
        assert await outbox.wait_for_events(1, timeout=0.01) is False

        # Events that exist no more do not count (no busy loop for an uplink whose cursor is behind).
        await outbox.delete([1])
        assert await outbox.wait_for_events(0, timeout=0.02) is False
        late = asyncio.create_task(outbox.wait_for_events(0, timeout=5))
        await asyncio.sleep(0.01)
        await outbox.append([alarm()])
        assert await asyncio.wait_for(late, 1) is True

        # close() wakes waiters.
        pending = asyncio.create_task(outbox.wait_for_events(100, timeout=5))
        await asyncio.sleep(0.01)
        await outbox.close()
        assert await asyncio.wait_for(pending, 1) is False

    asyncio.run(main())


def test_correct_unsynced_fixes_this_boots_events_only(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db")
        wrong_wall = 86400.0  # 1970-01-02: a Pi without an RTC before NTP
        ours = NewEvent.now(
            "reading", "s", {"v": 1.0}, boot=BOOT, clock="unsynced", wall=wrong_wall, mono=50.25
        )
        other_boot = NewEvent.now(
            "reading", "s", {"v": 2.0}, boot="earlier-boot", clock="unsynced", wall=wrong_wall, mono=70.0
        )
        synced = NewEvent.now("reading", "s", {"v": 3.0}, boot=BOOT, wall=1_800_000_000.0, mono=60.0)
        stored = await outbox.append([ours, other_boot, synced])
        offset = 1_800_000_000.0 - 60.0  # wall - mono once NTP synced
        assert await outbox.correct_unsynced(BOOT, offset) == 1
        fetched = {e.seq: e for e in await outbox.fetch("readings")}
        fixed = check_wire(fetched[stored[0].seq])
        assert fixed.ts == rfc3339_ms(datetime.fromtimestamp(50.25 + offset, UTC))
        assert fixed.clock == "unsynced"  # tells downstream that ts was derived
        assert fixed.id == ours.id and fixed.mono == 50.25
        assert fetched[stored[1].seq].envelope["ts"] == other_boot.ts
        assert fetched[stored[2].seq].envelope == stored[2].envelope
        assert outbox.pending_bytes == sum(e.size for e in fetched.values())
        # Done once: a second call finds nothing of this boot left to correct.
        assert await outbox.correct_unsynced(BOOT, offset + 5) == 0
        await outbox.close()

    asyncio.run(main())


def test_invalid_events_are_refused_before_anything_is_committed(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db")
        bad = [
            NewEvent.now("reading", "s", {"v": float("nan")}, boot=BOOT),
            NewEvent.now("bogus", "s", {}, boot=BOOT),  # type: ignore[arg-type]
            NewEvent.now("reading", "s", {}, boot=""),
            NewEvent.now("reading", "x" * 65, {}, boot=BOOT),
        ]
        for event in bad:
            with pytest.raises(ValueError):
                await outbox.append([reading(1), event])
        assert outbox.next_seq == 1 and await outbox.fetch("readings") == []
        await outbox.close()

    asyncio.run(main())


def test_one_process_at_a_time_and_closed_is_closed(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db")
        with pytest.raises(OutboxLockedError):
            await open_outbox(tmp_path / "o.db")
        await outbox.close()
        await outbox.close()  # idempotent
        with pytest.raises(OutboxClosedError):
            await outbox.append([reading()])
        again = await open_outbox(tmp_path / "o.db")  # the lock went with the close
        await again.close()

    asyncio.run(main())


def test_stats_and_export(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db")
        stored = await outbox.append(
            [reading(1), alarm(2), reading(3), NewEvent.now("test_result", "s", {"ok": True}, boot=BOOT)]
        )
        await outbox.delete([3])
        await outbox.record_publish(1_800_000_123.5)
        stats = await outbox.stats()
        assert stats.epoch == outbox.epoch and stats.next_seq == 5
        assert stats.pending == 3
        assert stats.pending_by_kind == {"alarm": 1, "reading": 1, "test_result": 1}
        assert stats.pending_by_lane == {"priority": 2, "readings": 1}
        assert stats.pending_bytes == sum(e.size for e in stored if e.seq != 3)
        assert stats.oldest_seq == 1 and stats.oldest_ts == stored[0].envelope["ts"]
        assert stats.oldest_age_s is not None and stats.oldest_age_s >= 0
        assert stats.disk_bytes >= stats.db_bytes > 0
        assert stats.evicted_total == 0 and stats.evicted_recent == []
        assert stats.last_publish == 1_800_000_123.5
        assert stats.commits_this_process == outbox.commits
        json.dumps(stats.as_dict())  # the CLI's --json

        out = tmp_path / "usb" / "export.jsonl"
        out.parent.mkdir()
        assert await outbox.export(out) == 3
        lines = out.read_text(encoding="utf-8").splitlines()
        envelopes = [Envelope.model_validate_json(line) for line in lines]
        assert [e.seq for e in envelopes] == [1, 2, 4]  # seq order, across lanes
        assert json.loads(lines[0]) == stored[0].envelope
        assert not list(out.parent.glob("*.part"))
        await outbox.close()
        # After close, from "another process": the persisted view agrees.
        cold = read_stats(tmp_path / "o.db")
        assert cold.pending == 3 and cold.last_publish == 1_800_000_123.5 and cold.next_seq == 5

    asyncio.run(main())


def test_open_refuses_nonsense_caps(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        asyncio.run(Outbox.open(tmp_path / "o.db", max_bytes=0, max_age_s=1, boot=BOOT))


def test_appends_commit_with_synchronous_full_and_deletes_with_normal(tmp_path: Path) -> None:
    """The durability choice of docs/DURABILITY.md, held in place."""

    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db")
        conn = outbox._conn  # the setting lives on the connection

        async def level() -> int:
            return int(next(iter(await conn.execute_fetchall("PRAGMA synchronous")))[0])

        await outbox.append([reading()])
        assert await level() == 2  # FULL: fsync of the WAL at every commit of events
        await outbox.delete([1])
        assert await level() == 1  # NORMAL: a lost delete only means a resend
        await outbox.append([reading()])
        assert await level() == 2
        mode = next(iter(await conn.execute_fetchall("PRAGMA journal_mode")))[0]
        assert mode == "wal"
        await outbox.close()

    asyncio.run(main())
