"""Events the writer could not commit: counted by reason, announced once by a gap event."""

from __future__ import annotations

import asyncio
import math
import sqlite3
from pathlib import Path
from typing import Any

from edge_agent.events import NewEvent
from edge_agent.outbox import OutboxWriter
from edge_agent.outbox.drops import announce_drops

from .helpers import BOOT, check_wire, open_outbox, reading


def _gap(data: dict[str, Any]) -> NewEvent:
    return NewEvent.now("gap", None, data, boot=BOOT)


def test_drops_under_a_foreign_lock_are_announced_once_with_their_count(tmp_path: Path) -> None:
    path = tmp_path / "o.db"

    async def main() -> None:
        outbox = await open_outbox(path, pragmas={"busy_timeout": 50})
        writer = OutboxWriter(outbox)
        run = asyncio.create_task(writer.run())
        announcer = asyncio.create_task(announce_drops(writer.drops, writer.submit, _gap))
        assert await writer.submit_or_drop(reading(0)) is not None
        locker = sqlite3.connect(path, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        for i in range(1, 6):
            assert await writer.submit_or_drop(reading(i, sensor="cabinet" if i % 2 else "climate")) is None
        # Not announceable while nothing commits.
        assert writer.drops.unannounced == 5
        locker.execute("ROLLBACK")
        locker.close()
        # One more with no wire form: refused whatever the storage does.
        await writer.submit_or_drop(NewEvent.now("reading", "climate", {"value": math.nan}, boot=BOOT))
        assert await writer.submit_or_drop(reading(7)) is not None  # commits work again
        for _ in range(100):
            if not writer.drops.unannounced:
                break
            await asyncio.sleep(0.01)
        assert writer.drops.by_reason["outbox_busy"] == 5 and writer.drops.by_reason["invalid_event"] == 1
        assert writer.drops.by_sensor == {"cabinet": 3, "climate": 3}
        assert writer.drops.unannounced == 0 and writer.drops.announced == 6
        assert await writer.submit_or_drop(reading(8)) is not None  # nothing more to announce
        announcer.cancel()
        await writer.stop()
        await run
        gaps = [check_wire(e) for e in await outbox.fetch("priority") if e.kind == "gap"]
        await outbox.close()
        assert len(gaps) == 1
        data = gaps[0].data
        assert data["reason"] == "not_committed" and data["evicted"] == [] and data["count"] == 6
        assert data["dropped"] == {"invalid_event": 1, "outbox_busy": 5}
        assert data["first_ts"] <= data["last_ts"]

    asyncio.run(main())
