"""A pipeline stage that stops making progress stops the pings, though the loop is alive:
the outbox writer blocked by another process holding SQLite's write lock."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

from edge_agent.events import NewEvent
from edge_agent.outbox.errors import OutboxError
from edge_agent.outbox.store import Outbox
from edge_agent.outbox.writer import OutboxWriter
from edge_agent.service import stages
from edge_agent.service.notify import Notifier
from edge_agent.service.watchdog import ProgressMonitor, keep_alive
from tests.service.helpers import NotifyListener, until


def reading() -> NewEvent:
    return NewEvent.now("reading", "s", {"x": 1.0}, boot="b")


def test_blocked_outbox_writer_stops_the_pings(tmp_path: Path) -> None:
    listener = NotifyListener(tmp_path / "notify.sock")
    db = tmp_path / "outbox.db"

    async def main() -> None:
        outbox = await Outbox.open(db, max_bytes=10**7, max_age_s=86400, boot="b")
        writer = OutboxWriter(outbox)
        running = asyncio.create_task(writer.run())
        monitor = ProgressMonitor()
        stages.watch_writer(monitor, writer, budget=0.5)
        notifier = Notifier({"NOTIFY_SOCKET": listener.env_value, "WATCHDOG_USEC": "200000"})
        stalls: list[list[object]] = []
        pinger = asyncio.create_task(keep_alive(notifier, monitor, lambda: "ok", record=stalls.append))
        await writer.submit(reading())
        await until(lambda: len(listener.times_of("WATCHDOG=1")) >= 2)

        blocker = sqlite3.connect(db, timeout=0)
        blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        pending = [asyncio.create_task(writer.submit(reading())) for _ in range(3)]
        await until(lambda: bool(stalls and stalls[-1]))
        before = len(listener.times_of("WATCHDOG=1"))
        await asyncio.sleep(1.0)
        assert len(listener.times_of("WATCHDOG=1")) == before, "no ping while the writer is stuck"
        assert next(str(s) for s in stalls[-1]).startswith("outbox-writer made no progress")
        blocker.rollback()
        blocker.close()
        await asyncio.gather(*pending, return_exceptions=True)  # committed, or failed on busy_timeout
        await until(lambda: len(listener.times_of("WATCHDOG=1")) > before)
        await writer.submit(reading())  # and the writer works again
        for task in (pinger, running):
            task.cancel()
        await asyncio.gather(pinger, running, return_exceptions=True)
        with contextlib.suppress(OutboxError):
            await outbox.close()

    try:
        asyncio.run(main())
    finally:
        listener.close()
    assert any(t.startswith("STATUS=STALLED: outbox-writer") for t in listener.texts())
