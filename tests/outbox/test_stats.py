"""Stats and export from outside the daemon, while it writes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from edge_agent.outbox import OutboxWriter, export_pending, read_stats

from .helpers import open_outbox, reading


def test_read_stats_and_export_from_other_connections_while_a_writer_runs(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"

    async def main() -> None:
        outbox = await open_outbox(path)
        writer = OutboxWriter(outbox)
        task = asyncio.create_task(writer.run())
        stop = asyncio.Event()

        async def produce() -> int:
            n = 0
            while not stop.is_set():
                await asyncio.gather(*(writer.submit(reading(n + i)) for i in range(200)))
                n += 200
            return n

        producer = asyncio.create_task(produce())
        seen = []
        for _ in range(10):
            await asyncio.sleep(0.02)
            stats = await asyncio.to_thread(read_stats, path)  # its own read-only connection
            seen.append(stats.pending)
            assert stats.pending_by_kind.get("reading", 0) == stats.pending
            assert stats.epoch == outbox.epoch
        # Another process, as `edge-agent buffer stats` would be.
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                f"from edge_agent.outbox import read_stats; print(read_stats({str(path)!r}).pending)",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        seen.append(int(out.stdout))
        exported = await asyncio.to_thread(export_pending, path, tmp_path / "out.jsonl")
        stop.set()
        total = await producer
        await writer.stop()
        await task
        assert seen == sorted(seen) and seen[-1] > 0  # it grew, and each view was consistent
        assert 0 < exported <= total
        lines = (tmp_path / "out.jsonl").read_text().splitlines()
        assert [json.loads(line)["seq"] for line in lines] == list(range(1, exported + 1))
        assert (await outbox.stats()).pending == total
        await outbox.close()

    asyncio.run(main())
