"""Issue 15's levers as shipped: the commit window, deletes carried by appends, 4 KiB pages.

Counts and order only (transactions, rows, page sizes); the bytes they save are measured
by bench/flash_wear.py.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from edge_agent.daemon.main import DELETE_WAIT
from edge_agent.outbox import OutboxWriter
from edge_agent.outbox.reserve import PAGE_SIZE
from edge_agent.sampling.handover import HandOver

from .helpers import open_outbox, reading, seqs

LONG = 3600.0
"""A window that never closes on its own within a test: only flush/stop/max_batch close it."""


def test_events_of_one_window_share_one_transaction(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db")
        writer = OutboxWriter(outbox, interval=LONG)
        task = asyncio.create_task(writer.run())
        before = outbox.commits
        submits = []
        for i in range(5):  # one producer after the other, as sensors tick
            submits.append(asyncio.create_task(writer.submit(reading(i))))
            await asyncio.sleep(0.01)
        assert writer.queued == 5 and outbox.next_seq == 1  # all waiting in the window
        await writer.flush()
        assert outbox.commits - before == 1 and writer.batches == 1
        assert [s.seq for s in await asyncio.gather(*submits)] == [1, 2, 3, 4, 5]
        await writer.stop()
        await task
        await outbox.close()

    asyncio.run(main())


def test_a_full_batch_and_stop_close_the_window(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db")
        writer = OutboxWriter(outbox, max_batch=10, interval=LONG)
        task = asyncio.create_task(writer.run())
        full = await asyncio.wait_for(asyncio.gather(*(writer.submit(reading(i)) for i in range(10))), 10)
        assert seqs(full) == list(range(1, 11))
        last = asyncio.create_task(writer.submit(reading(10)))
        await asyncio.sleep(0.05)
        assert not last.done()
        await asyncio.wait_for(writer.stop(), 10)  # the window is not waited out
        assert (await last).seq == 11
        await task
        await outbox.close()

    asyncio.run(main())


def test_the_window_closes_by_itself(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db")
        writer = OutboxWriter(outbox, interval=0.05)
        task = asyncio.create_task(writer.run())
        stored = await asyncio.wait_for(asyncio.gather(*(writer.submit(reading(i)) for i in range(3))), 10)
        assert seqs(stored) == [1, 2, 3] and writer.batches == 1
        await writer.stop()
        await task
        await outbox.close()

    asyncio.run(main())


def test_a_handed_over_reading_does_not_wait_for_its_commit(tmp_path: Path) -> None:
    """The sampler's emit with a window: it returns at once; the commit comes later, in order."""

    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db")
        writer = OutboxWriter(outbox, interval=LONG)
        task = asyncio.create_task(writer.run())
        committed: list[int] = []

        async def commit(event: object) -> object:
            stored = await writer.submit_or_drop(event)  # type: ignore[arg-type]
            assert stored is not None
            committed.append(stored.seq)
            return stored

        hand_over = HandOver(commit)
        for i in range(4):
            await asyncio.wait_for(hand_over(reading(i)), 1)
        await asyncio.sleep(0.01)
        assert hand_over.pending == 4 and writer.queued == 4 and not committed
        await writer.stop()
        await hand_over.wait()
        assert committed == [1, 2, 3, 4] and hand_over.pending == 0
        assert [e.envelope["data"]["i"] for e in await outbox.fetch("readings")] == [0, 1, 2, 3]
        await task
        await outbox.close()

    asyncio.run(main())


def test_a_delete_rides_on_the_next_append(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db", delete_window=LONG)
        first = await outbox.append([reading(i) for i in range(3)])
        assert await outbox.claim(seqs(first)) == {1, 2, 3}
        before = outbox.commits
        deleting = asyncio.create_task(outbox.delete([1, 2, 3, 99]))
        await asyncio.sleep(0.05)
        assert not deleting.done()  # waits for a transaction to carry it
        assert outbox.pending_count == 3
        await outbox.append([reading(3)])
        assert await deleting == 3  # returned once committed, with the rows it deleted
        assert outbox.commits - before == 1  # one transaction: the append carried the delete
        assert outbox.pending_count == 1 and outbox.pending_bytes == sum(
            e.size for e in await outbox.fetch("readings")
        )
        stats = await outbox.stats()
        assert stats.pending == 1 and stats.pending_bytes == outbox.pending_bytes
        assert seqs(await outbox.fetch("readings")) == [4]
        assert not outbox._caps.claimed  # the claims ended with the commit
        await outbox.close()

    asyncio.run(main())


def test_a_delete_no_append_carries_commits_alone_within_the_window(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db", delete_window=0.05)
        first = await outbox.append([reading(i) for i in range(3)])
        before = outbox.commits
        assert await asyncio.wait_for(outbox.delete(seqs(first[:2])), 10) == 2
        assert outbox.commits - before == 1 and outbox.pending_count == 1
        await outbox.close()

    asyncio.run(main())


def test_the_daemons_delete_wait_outlasts_the_gap_to_the_next_window(tmp_path: Path) -> None:
    """A delete parked after one window's commit is carried by the next window's, even when
    the next reading comes a while after the commit (sensors out of phase): with the
    daemon's ratio (DELETE_WAIT windows) no delete commits alone."""

    async def main() -> None:
        window = 0.2
        outbox = await open_outbox(tmp_path / "o.db", delete_window=DELETE_WAIT * window)
        writer = OutboxWriter(outbox, interval=window)
        task = asyncio.create_task(writer.run())
        before = outbox.commits
        stored = await asyncio.wait_for(writer.submit(reading(0)), 10)
        for i in range(1, 4):
            await outbox.claim([stored.seq])
            deleting = asyncio.create_task(outbox.delete([stored.seq]))  # its PUBACK came
            await asyncio.sleep(window / 2)  # the next reading, half a window later
            stored = await asyncio.wait_for(writer.submit(reading(i)), 10)
            assert await deleting == 1
        assert outbox.commits - before == 4  # one per window, none for a delete alone
        assert outbox.pending_count == 1 and seqs(await outbox.fetch("readings")) == [4]
        await writer.stop()
        await task
        await outbox.close()

    asyncio.run(main())


def test_close_commits_the_deletes_still_waiting(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db", delete_window=LONG)
        await outbox.append([reading(i) for i in range(3)])
        deleting = asyncio.create_task(outbox.delete([1, 2]))
        await asyncio.sleep(0.01)
        await outbox.close()
        assert await deleting == 2
        reopened = await open_outbox(tmp_path / "o.db")
        assert reopened.pending_count == 1 and seqs(await reopened.fetch("readings")) == [3]
        await reopened.close()

    asyncio.run(main())


def _page_size(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA page_size").fetchone()[0])
    finally:
        conn.close()


def test_a_new_outbox_has_4k_pages_and_a_1k_one_is_rebuilt_with_them(tmp_path: Path) -> None:
    async def main() -> None:
        path = tmp_path / "o.db"
        outbox = await open_outbox(path)
        await outbox.append([reading(i) for i in range(300)])
        await outbox.delete(range(1, 101))
        epoch = outbox.epoch
        await outbox.close()
        assert _page_size(path) == PAGE_SIZE == 4096

        # What the release of issue 15 made: 1 KiB pages.
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("PRAGMA page_size = 1024")
        conn.execute("VACUUM")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.close()
        assert _page_size(path) == 1024

        outbox = await open_outbox(path)
        assert _page_size(path) == 4096
        assert outbox.epoch == epoch and outbox.pending_count == 200 and outbox.next_seq == 301
        assert seqs(await outbox.fetch("readings", limit=1000)) == list(range(101, 301))
        assert (await outbox.append([reading(300)]))[0].seq == 301
        await outbox.close()
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental, kept
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()

    asyncio.run(main())


def test_inside_window_closed_events_commit_at_once(tmp_path: Path) -> None:
    """A reload's events (and what was queued before it) are not kept a window waiting."""

    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db")
        writer = OutboxWriter(outbox, interval=LONG)
        task = asyncio.create_task(writer.run())
        queued = asyncio.create_task(writer.submit(reading(0)))
        await asyncio.sleep(0.01)
        async with writer.window_closed():
            assert (await asyncio.wait_for(queued, 10)).seq == 1
            assert (await asyncio.wait_for(writer.submit(reading(1)), 10)).seq == 2
        later = asyncio.create_task(writer.submit(reading(2)))
        await asyncio.sleep(0.05)
        assert not later.done()  # the window is back
        await writer.stop()
        assert (await later).seq == 3
        await task
        await outbox.close()

    asyncio.run(main())
