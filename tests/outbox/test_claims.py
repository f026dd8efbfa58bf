"""Claims: events being sent are passed over by every eviction until they are deleted.

An event the uplink has published may arrive; were it evicted meanwhile, the cloud would
get it *and* a gap event saying it was evicted (docs/DURABILITY.md: never both).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from edge_agent.outbox import Outbox
from edge_agent.outbox.reserve import PAGE_SIZE

from .helpers import FakeClock, check_wire, open_outbox, reading, seqs


async def _announced(outbox: Outbox) -> set[int]:
    gaps = [e for e in await outbox.fetch("priority", limit=10_000) if e.kind == "gap"]
    return {s for g in gaps for a, b in check_wire(g).data["evicted"] for s in range(a, b + 1)}


def test_the_size_cap_passes_over_claimed_events_and_takes_the_next_oldest(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db", max_bytes=20_000)
        await outbox.append([reading(i) for i in range(40)])
        mark = outbox.eviction_mark
        fetched = await outbox.fetch("readings", limit=40)  # as the uplink reads ahead
        # Nothing evicted since the read: the claim is taken without a query.
        assert await outbox.claim(seqs(fetched[:10]), read_at=mark) == set(range(1, 11))
        await outbox.append([reading(i) for i in range(40, 100)])  # over the cap
        announced = await _announced(outbox)
        assert announced and min(announced) == 11, "the claimed 1-10 stay, the next oldest go"
        assert announced == set(range(11, 11 + len(announced)))
        # Read ahead before the eviction: the claim leaves out what is gone since.
        assert outbox.eviction_mark != mark
        assert await outbox.claim(seqs(fetched[10:20]), read_at=mark) == set(range(11, 21)) - announced
        # A delete ends the claims: the next eviction may take what was claimed and not deleted.
        await outbox.delete(range(1, 6))
        assert await outbox.claim([1, 2]) == set()
        await outbox.close()

    asyncio.run(main())


def test_nothing_but_claimed_events_left_the_cap_stays_soft(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db", max_bytes=5_000)
        stored = await outbox.append([reading(i) for i in range(10)])
        await outbox.claim(seqs(stored))
        await outbox.append([reading(i) for i in range(10, 40)])
        # The ten claimed remain; only the newer readings could go.
        assert set(seqs(stored)) <= set(seqs(await outbox.fetch("readings", limit=100)))
        assert not set(seqs(stored)) & await _announced(outbox)
        await outbox.close()

    asyncio.run(main())


def test_a_full_disk_passes_over_claimed_events(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db", pragmas={"max_page_count": 240 * 1024 // PAGE_SIZE})
        first = await outbox.append([reading(i) for i in range(50)])
        assert await outbox.claim(seqs(first[:20])) == set(range(1, 21))
        for r in range(1, 40):
            await outbox.append([reading(r * 50 + i) for i in range(50)])
            if outbox.evicted["disk_full"] > 100:
                break
        announced = await _announced(outbox)
        assert len(announced) == outbox.evicted["disk_full"] > 100
        assert min(announced) == 21 and not announced & set(range(1, 21))
        assert set(range(1, 21)) <= set(seqs(await outbox.fetch("readings", limit=10_000)))
        await outbox.close()

    asyncio.run(main())


def test_the_age_cap_passes_over_claimed_events(tmp_path: Path) -> None:
    async def main() -> None:
        clock = FakeClock()
        outbox = await open_outbox(tmp_path / "o.db", max_age_s=100.0, monotonic=clock)
        old = await outbox.append([reading(i) for i in range(10)])
        await outbox.claim(seqs(old[:3]))
        clock.advance(150)
        await outbox.append([reading(10)])
        assert await _announced(outbox) == set(range(4, 11))
        assert seqs(await outbox.fetch("readings")) == [1, 2, 3, 11]
        await outbox.close()

    asyncio.run(main())
