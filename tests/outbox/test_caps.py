"""Size and age caps: who is evicted, in what order, and how it is announced."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from edge_agent.events import StoredEvent
from edge_agent.outbox import LOW_WATER, Outbox, OutboxError, read_stats

from .helpers import FakeClock, alarm, check_wire, open_outbox, reading, seqs


async def _gaps(outbox: Outbox) -> list[StoredEvent]:
    return [e for e in await outbox.fetch("priority", limit=10_000) if e.kind == "gap"]


def test_size_cap_evicts_oldest_readings_first_and_announces_exact_ranges(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db")
        # readings 1-10, an alarm at 11, readings 12-20.
        stored = await outbox.append([reading(i) for i in range(10)])
        stored += await outbox.append([alarm(10)])
        stored += await outbox.append([reading(i) for i in range(11, 20)])
        size = max(e.size for e in stored)
        total = outbox.pending_bytes
        await outbox.close()

        # Reopen with a cap just above what is pending; ten more readings cross it.
        cap = total + size
        outbox = await open_outbox(tmp_path / "o.db", max_bytes=cap)
        with caplog.at_level(logging.WARNING, logger="edge_agent.outbox"):
            new = await outbox.append([reading(i) for i in range(20, 30)])  # seqs 21-30: over the cap
        assert seqs(new) == list(range(21, 31))
        # Needed: down to 90 % of the cap.  Oldest readings go first, skipping the alarm.
        need = total + sum(e.size for e in new) - int(LOW_WATER * cap)
        evicted: list[int] = []
        freed = 0
        for event in stored:
            if event.kind == "reading" and freed < need:
                evicted.append(event.seq)
                freed += event.size
        n_evicted = len(evicted)
        assert 10 < n_evicted < 19, "the test wants the eviction to span the alarm"
        gaps = await _gaps(outbox)
        assert len(gaps) == 1
        gap = check_wire(gaps[0])
        assert gap.kind == "gap" and gap.sensor is None and gap.seq == 31
        assert gap.data == {"reason": "size_cap", "evicted": [[1, 10], [12, evicted[-1]]], "count": n_evicted}
        remaining = seqs(await outbox.fetch("readings", limit=100))
        assert remaining == [s for s in range(1, 31) if s not in evicted and s != 11]
        assert seqs(await outbox.fetch("priority")) == [11, 31]  # the alarm stays
        assert outbox.pending_bytes <= cap
        assert "size_cap" in caplog.text and "evicted" in caplog.text

        stats = await outbox.stats()
        assert stats.evicted_total == n_evicted == stats.evicted_by_reason["size_cap"]
        assert {(r.first, r.last) for r in stats.evicted_recent} == {(1, 10), (12, evicted[-1])}
        assert all(r.gap_seq == 31 and r.reason == "size_cap" for r in stats.evicted_recent)

        # Hysteresis: the next append fits under the cap and evicts nothing.
        await outbox.append([reading(99)])
        assert len(await _gaps(outbox)) == 1
        await outbox.close()
        assert read_stats(tmp_path / "o.db").evicted_total == n_evicted  # persisted

    asyncio.run(main())


def test_priority_events_go_last_and_evicted_gaps_are_folded_into_the_next(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db")
        alarms = await outbox.append([alarm(i) for i in range(6)])  # seqs 1-6, priority only
        size = alarms[0].size
        await outbox.close()

        outbox = await open_outbox(tmp_path / "o.db", max_bytes=7 * size)
        await outbox.append([reading(1), reading(2)])  # 7-8: over the cap; no older reading exists
        first_gap = (await _gaps(outbox))[0]
        first_evicted = first_gap.envelope["data"]["evicted"]
        assert first_evicted[0][0] == 1  # oldest priority events went, since no reading was older
        assert seqs(await outbox.fetch("readings")) == [7, 8]  # the events being appended are kept

        # Push again: the first gap event is now among the oldest priority events.
        for i in range(12):
            await outbox.append([alarm(100 + i)])
        gaps = await _gaps(outbox)
        announced = set()
        for gap in gaps:
            for first, last in gap.envelope["data"]["evicted"]:
                announced |= set(range(first, last + 1))
        assert first_gap.seq not in {e.seq for e in gaps}, "the first gap event was evicted in turn"
        # ... and its ranges are carried on by a later gap event, with its own seq.
        assert set(range(first_evicted[0][0], first_evicted[0][1] + 1)) <= announced
        assert first_gap.seq in announced
        present = {e.seq for e in await outbox.fetch("priority", limit=1000)} | {
            e.seq for e in await outbox.fetch("readings", limit=1000)
        }
        # Every seq below next_seq is either present or announced as evicted: none is "missing".
        assert set(range(1, outbox.next_seq)) == present | announced
        await outbox.close()

    asyncio.run(main())


def test_large_evictions_are_split_into_bounded_gap_events(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db")
        # Readings interleaved with alarms: every other seq is evicted, 1,200 ranges in all.
        batch = []
        for i in range(1200):
            batch += [reading(i), alarm(i)]
        stored = await outbox.append(batch)
        readings_bytes = sum(e.size for e in stored if e.kind == "reading")
        await outbox.close()
        outbox = await open_outbox(tmp_path / "o.db", max_bytes=outbox_bytes(stored) - readings_bytes // 2)
        await outbox.append([alarm(-1)])
        gaps = await _gaps(outbox)
        assert len(gaps) > 1
        counted = 0
        for gap in gaps:
            data = check_wire(gap).data
            assert len(data["evicted"]) <= 500 and gap.size < 16_000
            assert data["count"] == sum(b - a + 1 for a, b in data["evicted"])
            counted += data["count"]
        assert counted == (await outbox.stats()).evicted_total
        await outbox.close()

    asyncio.run(main())


def outbox_bytes(events: list[StoredEvent]) -> int:
    return sum(e.size for e in events)


def test_age_cap_on_the_runtime_clock_ignores_wall_clock_jumps(tmp_path: Path) -> None:
    async def main() -> None:
        mono = FakeClock()
        wall = FakeClock(1_800_000_000.0)
        day = 86400.0
        outbox = await open_outbox(tmp_path / "o.db", max_age_s=10 * day, monotonic=mono, wall=wall)
        old = await outbox.append([reading(1), alarm(2)])
        mono.advance(5 * day)
        middle = await outbox.append([reading(3)])

        # The wall clock jumps a year ahead (NTP after a bad RTC): nothing is evicted.
        wall.advance(365 * day)
        await outbox.append([reading(4)])
        assert await _gaps(outbox) == []

        # 10 days of runtime after the first events: they go (alarm too: the age cap is for all).
        mono.advance(5 * day + 1)
        await outbox.append([reading(5)])
        gaps = await _gaps(outbox)
        assert len(gaps) == 1
        assert gaps[0].envelope["data"] == {"reason": "age_cap", "evicted": [[1, 2]], "count": 2}
        # Hysteresis: anything older than 90 % of max_age went too; the 5-day-old one stays.
        assert middle[0].seq in seqs(await outbox.fetch("readings"))
        assert old[0].seq not in seqs(await outbox.fetch("readings"))
        stats = await outbox.stats()
        assert stats.evicted_by_reason["age_cap"] == 2
        assert stats.oldest_age_s == pytest.approx(5 * day + 1)
        await outbox.close()

    asyncio.run(main())


def test_runtime_clock_persists_across_restarts_and_power_off_does_not_count(tmp_path: Path) -> None:
    async def main() -> None:
        day = 86400.0
        mono = FakeClock(500.0)
        outbox = await open_outbox(tmp_path / "o.db", max_age_s=3 * day, monotonic=mono)
        await outbox.append([reading(1)])
        mono.advance(2 * day)
        await outbox.close()  # runtime 2 days persisted

        # "Reboot": monotonic restarts near 0, and the device was off for a month.
        mono = FakeClock(3.0)
        outbox = await open_outbox(tmp_path / "o.db", max_age_s=3 * day, monotonic=mono)
        assert outbox.runtime() == pytest.approx(2 * day)
        await outbox.append([reading(2)])
        assert await _gaps(outbox) == []  # 2 days of runtime < 3
        mono.advance(day + 1)
        await outbox.append([reading(3)])
        gaps = await _gaps(outbox)
        assert [g.envelope["data"]["evicted"] for g in gaps] == [[[1, 1]]]
        await outbox.close()

    asyncio.run(main())


def test_a_lowered_cap_is_applied_at_open(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db")
        stored = await outbox.append([reading(i) for i in range(100)])
        await outbox.close()
        outbox = await open_outbox(tmp_path / "o.db", max_bytes=outbox_bytes(stored) // 2)
        assert outbox.pending_bytes <= outbox.max_bytes
        assert len(await _gaps(outbox)) == 1
        await outbox.close()

    asyncio.run(main())


def test_an_evicted_exported_gap_event_is_announced_again_as_exported_not_as_lost(tmp_path: Path) -> None:
    """A site with no uplink: 30 events exported with --mark-exported, then the age cap evicts
    the gap event announcing them.  Its ranges went into an ``age_cap`` gap (count 31): the
    cloud would count the 30 exported events as lost."""
    clock = FakeClock()

    async def main() -> tuple[list[dict[str, object]], dict[str, int], int]:
        outbox = await open_outbox(tmp_path / "o.db", max_age_s=100, monotonic=clock)
        await outbox.append([reading(i) for i in range(30)])
        assert await outbox.mark_exported(tmp_path / "events.jsonl") == 30
        clock.advance(200)
        await outbox.append([reading(99)])  # seq 32; the exported gap event (seq 31) is past the age cap
        gaps = [e.envelope["data"] for e in await outbox.fetch("priority") if e.kind == "gap"]
        gaps += [e.envelope["data"] for e in await outbox.fetch("readings") if e.kind == "gap"]
        evicted, exported = dict(outbox.evicted), outbox.exported
        await outbox.close()
        return gaps, evicted, exported

    gaps, evicted, exported = asyncio.run(main())
    assert sorted(gaps, key=lambda g: str(g["reason"])) == [
        {"reason": "age_cap", "evicted": [[31, 31]], "count": 1},
        {"reason": "exported", "evicted": [[1, 30]], "count": 30},
    ]
    assert evicted["age_cap"] == 1 and exported == 30


def test_priority_mark_moves_on_priority_commits_only(tmp_path: Path) -> None:
    """The uplink's priority lane, found empty, looks again only when this mark moves:
    readings do not move it; an alarm does, and so does a gap event an eviction appends."""

    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db")
        mark = outbox.priority_mark
        await outbox.append([reading(i) for i in range(10)])
        assert outbox.priority_mark == mark, "readings alone"
        await outbox.delete([1, 2])
        assert outbox.priority_mark == mark, "a delete"
        await outbox.append([reading(10), alarm(11)])
        assert outbox.priority_mark == mark + 1, "an alarm in the batch"
        total = outbox.pending_bytes
        await outbox.close()

        outbox = await open_outbox(tmp_path / "o.db", max_bytes=total + 50)
        mark = outbox.priority_mark
        await outbox.append([reading(i) for i in range(20, 25)])  # over the cap: a gap event
        assert [e.kind for e in await _gaps(outbox)] == ["gap"]
        assert outbox.priority_mark == mark + 1, "the gap event of an eviction"
        await outbox.close()

    asyncio.run(main())


def test_priority_mark_stays_when_the_transaction_rolls_back(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db")
        mark = outbox.priority_mark
        with pytest.raises(OutboxError):
            await outbox.append_encoded(
                [outbox.encode(alarm(1))], also=[("INSERT INTO no_such_table VALUES (1)", ())]
            )
        assert seqs(await outbox.fetch("priority")) == []
        await outbox.append([reading(2)])
        assert outbox.priority_mark == mark, "the alarm was never committed"
        await outbox.close()

    asyncio.run(main())
