"""An outbox of known events, damaged the ways a disk loses data, and how much salvage gets back
(shared by tests/outbox/test_salvage_pages.py and bench/salvage_rates.py)."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path

from edge_agent.outbox import salvage
from edge_agent.outbox.salvage import SalvageReport

from .helpers import alarm, open_outbox, reading

N_EVENTS = 1003
DAMAGES = ("first 512 B", "first 4 KiB", "first 64 KiB", "random pages")


def build(path: Path, page_size: int, n: int = N_EVENTS) -> None:
    """``n`` events (an alarm every 50th), closed cleanly, laid out in ``page_size`` pages."""

    async def main() -> None:
        outbox = await open_outbox(path)
        for start in range(0, n, 100):
            await outbox.append(
                [alarm(i) if i % 50 == 0 else reading(i) for i in range(start, min(n, start + 100))]
            )
        await outbox.close()

    asyncio.run(main())
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        if conn.execute("PRAGMA page_size").fetchone()[0] != page_size:
            conn.execute("PRAGMA journal_mode = DELETE")  # the page size changes only outside WAL
            conn.execute(f"PRAGMA page_size = {page_size}")
            conn.execute("VACUUM")
            conn.execute("PRAGMA journal_mode = WAL")
    finally:
        conn.close()


def damage(path: Path, kind: str, page_size: int, seed: int = 1) -> None:
    """Zeroes at the start of the file (a lost first sector or pages), or one page in
    twenty overwritten with random bytes."""
    size = path.stat().st_size
    with path.open("r+b") as f:
        if kind == "random pages":
            rng = random.Random(seed)
            pages = size // page_size
            for page in rng.sample(range(pages), max(1, pages // 20)):
                f.seek(page * page_size)
                f.write(rng.randbytes(page_size))
        else:
            f.write(b"\0" * {"first 512 B": 512, "first 4 KiB": 4096, "first 64 KiB": 65536}[kind])


def recovery(directory: Path, kind: str, page_size: int) -> tuple[float, SalvageReport]:
    """Share of the events salvaged from an outbox damaged by ``kind``, and the report."""
    directory.mkdir(parents=True, exist_ok=True)
    old = directory / "old.db"
    build(old, page_size)
    damage(old, kind, page_size)

    async def main() -> SalvageReport:
        into = await open_outbox(directory / "new.db")
        try:
            return await salvage(old, into)
        finally:
            await into.close()

    report = asyncio.run(main())
    return report.recovered / N_EVENTS, report
