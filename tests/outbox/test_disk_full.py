"""SQLITE_FULL survived: make room by evicting the oldest events, never lose the new ones.

Two ways to make SQLite itself report SQLITE_FULL: ``PRAGMA max_page_count`` (always
available), and a really full filesystem (a small tmpfs, which needs root and the right
to mount: skipped with the reason otherwise, a failure under CI; see tests/tmpfs.py).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from edge_agent.events import StoredEvent, lane_of
from edge_agent.outbox import SCHEMA_VERSION, Outbox, OutboxFullError, read_stats
from edge_agent.outbox.codec import LANE_CODE, encode
from edge_agent.outbox.reserve import PAGE_SIZE, Reserve
from edge_agent.outbox.schema import migrate, version_of
from tests.tmpfs import fill, small_tmpfs

from .helpers import alarm, check_wire, open_outbox, reading, seqs

RESERVE = 256 * 1024
"""Disk space kept back on the small tmpfs (the default, 8 MiB, is for real cards)."""
PAGES = 240 * 1024 // PAGE_SIZE
"""max_page_count for the tests: 240 KB, about 700 readings."""


async def _fill_until_full(outbox: Outbox, batch: int = 50, rounds: int = 40) -> list[int]:
    """Append readings until an eviction for disk_full has happened; returns the seqs committed."""
    committed: list[int] = []
    for r in range(rounds):
        stored = await outbox.append([reading(r * batch + i) for i in range(batch)])
        assert len(stored) == batch
        committed += seqs(stored)
        if (await outbox.stats()).evicted_by_reason["disk_full"]:
            return committed
    raise AssertionError("the outbox never filled up")


def _evicted_by(gaps: list[StoredEvent]) -> set[int]:
    """The seqs the ``disk_full`` gap events announce as evicted."""
    return {s for g in gaps for first, last in g.envelope["data"]["evicted"] for s in range(first, last + 1)}


def test_max_page_count_full_evicts_oldest_readings_and_keeps_the_new_events(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db", pragmas={"max_page_count": PAGES})
        important = await outbox.append([alarm(1)])
        committed = await _fill_until_full(outbox)
        stats = await outbox.stats()
        assert stats.disk_full_count >= 1
        assert stats.evicted_by_reason["disk_full"] > 0 and stats.evicted_by_reason["size_cap"] == 0
        # One episode however many SQLITE_FULL errors it took; its gap event counted once committed.
        assert outbox.disk_full_episodes == 1 and outbox.disk_full_errors == stats.disk_full_count
        assert outbox.gap_events == 1

        gaps = [e for e in await outbox.fetch("priority") if e.kind == "gap"]
        assert len(gaps) == 1
        data = check_wire(gaps[0]).data
        assert data["reason"] == "disk_full"
        evicted = {s for first, last in data["evicted"] for s in range(first, last + 1)}
        assert len(evicted) == data["count"] == stats.evicted_total
        # The oldest readings went, and only readings; the alarm stays.
        assert sorted(evicted) == committed[: len(evicted)]
        assert important[0].seq in seqs(await outbox.fetch("priority"))
        # Everything committed is either still there or announced as evicted.
        present = set(seqs(await outbox.fetch("readings", limit=10_000)))
        assert set(committed) == present | evicted
        assert not present & evicted

        # It keeps working: more appends go on evicting as needed.
        for r in range(10):
            assert len(await outbox.append([reading(10_000 + r * 50 + i) for i in range(50)])) == 50
        await outbox.close()
        assert read_stats(tmp_path / "o.db").disk_full_count >= 1  # persisted

    asyncio.run(main())


def test_priority_events_are_evicted_when_no_reading_is_left(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db", pragmas={"max_page_count": PAGES})
        committed: list[int] = []
        for r in range(40):
            committed += seqs(await outbox.append([alarm(r * 50 + i) for i in range(50)]))
        # Still appending: room was made among the (oldest) priority events.
        stats = await outbox.stats()
        assert stats.disk_full_count >= 1 and stats.pending_by_kind.get("reading", 0) == 0
        present = seqs(await outbox.fetch("priority", limit=10_000))
        assert committed[-50:] == [s for s in present if s in committed][-50:]
        await outbox.close()

    asyncio.run(main())


def test_no_room_at_all_raises_and_commits_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db", pragmas={"max_page_count": 12})
        before = outbox.next_seq
        huge = [reading(i) for i in range(2000)]  # bigger than the whole file may be
        with pytest.raises(OutboxFullError):
            await outbox.append(huge)
        assert outbox.next_seq == before  # nothing committed, no seq consumed
        assert await outbox.fetch("readings") == []
        # Still usable for what fits.
        assert seqs(await outbox.append([reading(1)])) == [before]
        await outbox.close()

    asyncio.run(main())


def test_a_really_full_filesystem(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "mnt", "2m") as mnt:

        async def main() -> None:
            outbox = await open_outbox(mnt / "o.db", reserve_bytes=RESERVE)
            important = await outbox.append([alarm(1)])
            # Fill the filesystem with something else, as on a full SD card, leaving ~600 KB.
            fill(mnt, leave=600 * 1024)

            committed = await _fill_until_full(outbox, batch=50, rounds=200)
            stats = await outbox.stats()
            assert stats.disk_full_count >= 1 and stats.evicted_by_reason["disk_full"] > 0
            gaps = [e for e in await outbox.fetch("priority") if e.kind == "gap"]
            assert gaps and all(g.envelope["data"]["reason"] == "disk_full" for g in gaps)
            evicted = _evicted_by(gaps)
            present = set(seqs(await outbox.fetch("readings", limit=100_000)))
            assert set(committed) == present | evicted
            assert important[0].seq in seqs(await outbox.fetch("priority"))
            for r in range(5):  # and it goes on
                assert len(await outbox.append([reading(r * 50 + i) for i in range(50)])) == 50
            await outbox.close()
            # Reopening on the still-full filesystem works and keeps everything.
            outbox = await open_outbox(mnt / "o.db", reserve_bytes=RESERVE)
            assert important[0].seq in seqs(await outbox.fetch("priority"))
            await outbox.close()

        asyncio.run(main())


def test_tight_disk_keeps_the_wal_small_until_room_comes_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """After SQLITE_FULL the WAL is checkpointed every few pages (it cannot grow on a full
    disk); once the filler is gone the normal WAL comes back, and it is logged once."""
    with small_tmpfs(tmp_path / "mnt", "4m") as mnt:

        async def main() -> None:
            outbox = await open_outbox(mnt / "o.db", reserve_bytes=RESERVE)
            filler = fill(mnt, leave=300 * 1024)
            committed = await _fill_until_full(outbox, batch=50, rounds=200)
            assert outbox.disk_tight
            pages = await outbox._conn.execute_fetchall("PRAGMA wal_autocheckpoint")
            assert next(iter(pages))[0] == 16
            # Acknowledged events go even on the full disk (a delete needs WAL room too).
            assert await outbox.delete(committed[-100:]) > 0
            filler.unlink()
            for r in range(300):  # more than TIGHT_CHECK_COMMITS transactions
                await outbox.append([reading(r)])
                if not outbox.disk_tight:
                    break
            assert not outbox.disk_tight
            pages = await outbox._conn.execute_fetchall("PRAGMA wal_autocheckpoint")
            assert next(iter(pages))[0] == RESERVE // (2 * PAGE_SIZE)
            await outbox.close()

        with caplog.at_level("DEBUG", logger="edge_agent.outbox"):
            asyncio.run(main())
    errors = [r for r in caplog.records if r.levelname == "ERROR" and "the disk is full" in r.getMessage()]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert any("has room again" in r.getMessage() for r in caplog.records)


def test_a_restart_on_a_really_full_filesystem_never_quarantines_a_healthy_outbox(tmp_path: Path) -> None:
    """An outbox of schema 3 (the release before), cleanly closed (no ``-shm`` left), reopened
    on a full card.  The open found no room to make ``-shm`` (SQLITE_IOERR_SHMSIZE), took
    that for damage and moved the healthy file aside: a new epoch, its events left for a
    manual salvage.  Now the open releases the reserve and retries: the migration runs and
    the connection makes its -shm before the reserve is allocated again, so the outbox
    opens on the full disk, as it was; once room comes back, likewise."""
    with small_tmpfs(tmp_path / "mnt", "2m") as mnt:
        path = mnt / "o.db"
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("PRAGMA journal_mode = WAL")
        migrate(conn, target=3)
        epoch = conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()[0]
        for seq in range(1, 201):
            event = alarm(seq) if seq % 10 == 0 else reading(seq)
            body, size = encode(event, epoch).body(seq)
            conn.execute(
                "INSERT INTO events (seq, lane, kind, size, body) VALUES (?, ?, ?, ?, ?)",
                (seq, LANE_CODE[lane_of(event.kind)], event.kind, size, body),
            )
        conn.execute("UPDATE state SET last_seq = 200, pending_count = 200")
        conn.close()
        assert Reserve(mnt / "o.db.reserve", RESERVE).restore()
        filler = fill(mnt, leave=0)

        async def full() -> None:
            # It opens, migrated, on the reserve's room (-shm and -wal before the reserve).
            outbox = await open_outbox(path, reserve_bytes=RESERVE)
            assert outbox.epoch == epoch and outbox.quarantined is None
            assert outbox.pending_count == 200
            await outbox.close()

        asyncio.run(full())
        assert not list(mnt.glob("o.db.corrupt-*"))
        filler.unlink()

        async def room() -> None:
            outbox = await open_outbox(path, reserve_bytes=RESERVE)
            assert outbox.epoch == epoch and outbox.quarantined is None
            assert seqs(await outbox.fetch("priority")) == list(range(10, 201, 10))
            assert len(await outbox.fetch("readings", limit=1000)) == 180
            await outbox.close()

        asyncio.run(room())
        check = sqlite3.connect(path)
        assert version_of(check) == SCHEMA_VERSION
        check.close()


def test_a_disk_without_room_for_the_whole_reserve_still_evicts_when_it_fills(tmp_path: Path) -> None:
    """Opened with less free than the reserve, the outbox ran without one: when the disk
    filled, neither a checkpoint nor an eviction had room, so every new event was refused
    while the oldest stayed (stress run, 8 workers).  It holds what part of the reserve
    fits, keeps its WAL to half of that, and evicts as on any full disk."""
    whole = 4 * RESERVE
    with small_tmpfs(tmp_path / "mnt", "4m") as mnt:
        fill(mnt, leave=whole // 2 + 200 * 1024)  # the file, its WAL and half the reserve

        async def main() -> None:
            outbox = await open_outbox(mnt / "o.db", reserve_bytes=whole)
            assert 64 * PAGE_SIZE <= (mnt / "o.db.reserve").stat().st_size < whole
            important = await outbox.append([alarm(1)])
            committed = await _fill_until_full(outbox, batch=50, rounds=200)
            for r in range(20):  # and it goes on, evicting
                stored = await outbox.append([reading(r * 50 + i) for i in range(50)])
                committed += seqs(stored)
            stats = await outbox.stats()
            assert stats.evicted_by_reason["disk_full"] > 0
            gaps = [e for e in await outbox.fetch("priority") if e.kind == "gap"]
            evicted = _evicted_by(gaps)
            present = set(seqs(await outbox.fetch("readings", limit=100_000)))
            assert set(committed) == present | evicted
            assert important[0].seq in seqs(await outbox.fetch("priority"))
            await outbox.close()

        asyncio.run(main())
