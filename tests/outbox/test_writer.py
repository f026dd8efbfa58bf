"""Group commit: concurrent producers share transactions; each learns its own outcome."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from edge_agent.events import NewEvent
from edge_agent.outbox import OutboxClosedError, OutboxFullError, OutboxWriter

from .helpers import BOOT, alarm, check_wire, open_outbox, reading


def test_concurrent_submits_are_committed_in_few_transactions(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db")
        writer = OutboxWriter(outbox, max_batch=1000)
        task = asyncio.create_task(writer.run())
        commits_before = outbox.commits
        events = [reading(i) if i % 7 else alarm(i) for i in range(3000)]
        stored = await asyncio.gather(*(writer.submit(e) for e in events))
        transactions = outbox.commits - commits_before
        assert transactions <= 5, f"{transactions} transactions for 3,000 concurrent events"
        assert writer.batches == transactions
        # Each producer got its own event back, committed, with a unique seq.
        assert [s.envelope["id"] for s in stored] == [e.id for e in events]
        assert sorted(s.seq for s in stored) == list(range(1, 3001))
        for s in stored[::97]:
            check_wire(s)
        assert (
            len(await outbox.fetch("readings", limit=5000)) + len(await outbox.fetch("priority", limit=5000))
            == 3000
        )
        await writer.stop()
        await task
        await outbox.close()

    asyncio.run(main())


def test_max_batch_bounds_a_transaction(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db")
        writer = OutboxWriter(outbox, max_batch=10)
        task = asyncio.create_task(writer.run())
        await asyncio.gather(*(writer.submit(reading(i)) for i in range(100)))
        assert writer.batches >= 10
        await writer.stop()
        await task
        await outbox.close()

    asyncio.run(main())


def test_a_lone_producer_is_not_kept_waiting(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db")
        writer = OutboxWriter(outbox)
        task = asyncio.create_task(writer.run())
        for i in range(3):
            stored = await asyncio.wait_for(writer.submit(reading(i)), 2)
            assert stored.seq == i + 1
        await writer.stop()
        await task
        await outbox.close()

    asyncio.run(main())


def test_stop_commits_what_is_queued_then_refuses(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db")
        writer = OutboxWriter(outbox)
        task = asyncio.create_task(writer.run())
        submits = [asyncio.create_task(writer.submit(reading(i))) for i in range(50)]
        await asyncio.sleep(0)  # queued, not yet committed
        await writer.stop()
        await task
        assert sorted(s.seq for s in await asyncio.gather(*submits)) == list(range(1, 51))
        with pytest.raises(OutboxClosedError):
            await writer.submit(reading())
        await outbox.close()

        # stop() without run(): it drains by itself.
        outbox = await open_outbox(tmp_path / "o.db")
        writer = OutboxWriter(outbox)
        submits = [asyncio.create_task(writer.submit(reading(i))) for i in range(5)]
        await asyncio.sleep(0)
        await writer.stop()
        assert [s.seq for s in await asyncio.gather(*submits)] == [51, 52, 53, 54, 55]
        await outbox.close()

    asyncio.run(main())


def test_an_invalid_event_fails_alone(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db")
        writer = OutboxWriter(outbox)
        task = asyncio.create_task(writer.run())
        bad = NewEvent.now("reading", "s", {"v": float("inf")}, boot=BOOT)
        results = await asyncio.gather(
            writer.submit(reading(1)), writer.submit(bad), writer.submit(reading(2)), return_exceptions=True
        )
        assert isinstance(results[1], ValueError)
        assert [r.seq for r in (results[0], results[2])] == [1, 2]  # type: ignore[union-attr]
        await writer.stop()
        await task
        await outbox.close()

    asyncio.run(main())


def test_a_failed_batch_fails_its_producers_and_the_writer_goes_on(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db", pragmas={"max_page_count": 12})
        writer = OutboxWriter(outbox, max_batch=5000)
        task = asyncio.create_task(writer.run())
        results = await asyncio.gather(
            *(writer.submit(reading(i)) for i in range(3000)), return_exceptions=True
        )
        assert all(isinstance(r, OutboxFullError) for r in results)
        assert outbox.next_seq == 1
        assert (await writer.submit(reading(1))).seq == 1  # still running
        await writer.stop()
        await task
        await outbox.close()

    asyncio.run(main())


def test_submit_or_drop_counts_and_logs_once_what_cannot_be_committed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A sampling loop must go on when the storage refuses its events (the daemon's emit)."""

    async def main() -> OutboxWriter:
        outbox = await open_outbox(tmp_path / "o.db", pragmas={"max_page_count": 12})
        writer = OutboxWriter(outbox)
        task = asyncio.create_task(writer.run())
        huge = {f"q{i}": float(i) for i in range(2000)}  # no event this size fits in 12 pages
        big = [NewEvent.now("reading", "climate", huge, boot=BOOT) for _ in range(5)]
        results = [await writer.submit_or_drop(event) for event in big]
        assert results == [None] * 5 and writer.dropped == 5
        stored = await writer.submit_or_drop(reading(1))
        assert stored is not None and stored.seq == 1  # nothing of the refused ones used a seq
        await writer.stop()
        await task
        await outbox.close()
        return writer

    with caplog.at_level("INFO", logger="edge_agent.outbox"):
        asyncio.run(main())
    refused = [r for r in caplog.records if "not committed" in r.getMessage()]
    assert len(refused) == 1 and "OutboxFullError" in refused[0].getMessage()
    assert any("committed again (5 were dropped)" in r.getMessage() for r in caplog.records)


def test_cancelling_the_writer_still_resolves_the_batch_in_flight(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db")
        writer = OutboxWriter(outbox)
        task = asyncio.create_task(writer.run())
        submits = [asyncio.create_task(writer.submit(reading(i))) for i in range(500)]
        while writer.queued < 500:  # all queued...
            await asyncio.sleep(0)
        while writer.queued:  # ...and taken into a transaction, not yet committed
            await asyncio.sleep(0)
        assert writer.batches == 0
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        outcomes = await asyncio.gather(*submits, return_exceptions=True)
        committed = {o.seq for o in outcomes if not isinstance(o, BaseException)}
        # Whatever a producer was told was committed is in the outbox; nothing else is.
        in_outbox = {e.seq for e in await outbox.fetch("readings", limit=1000)}
        assert committed == in_outbox
        assert all(isinstance(o, OutboxClosedError) for o in outcomes if isinstance(o, BaseException))
        assert len(committed) == 500  # the transaction was under way: it finished
        with pytest.raises(OutboxClosedError):  # a writer whose run() ended takes nothing more
            await writer.submit(reading())
        await outbox.close()

    asyncio.run(main())


def test_submit_many_is_committed_together_and_never_split(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db")
        writer = OutboxWriter(outbox, max_batch=10)
        task = asyncio.create_task(writer.run())
        first, second, single = await asyncio.gather(
            writer.submit_many([reading(i) for i in range(25)]),  # bigger than max_batch: one transaction
            writer.submit_many([alarm(i) for i in range(3)]),
            writer.submit(reading(99)),
        )
        assert [e.seq for e in first] == list(range(1, 26))
        assert [e.seq for e in second] == [26, 27, 28] and single.seq == 29
        assert writer.batches == 2  # 25 alone, then 3 + 1
        assert await writer.submit_many([]) == []
        bad = NewEvent.now("reading", "s", {"v": float("nan")}, boot=BOOT)
        with pytest.raises(ValueError):
            await writer.submit_many([reading(1), bad])
        assert outbox.next_seq == 30
        await writer.stop()
        await task
        await outbox.close()

    asyncio.run(main())
