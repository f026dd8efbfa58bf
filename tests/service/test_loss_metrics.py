"""``/metrics`` and ``status`` count every outcome the outbox had: gap events, drops,
quarantines, salvaged events, on a real outbox (no daemon process: fast)."""

from __future__ import annotations

import asyncio
import math
import os
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from edge_agent.cli.status_cmd import render
from edge_agent.events import NewEvent
from edge_agent.outbox import OutboxWriter, salvage
from edge_agent.sampling.clock_sync import ClockWatch
from edge_agent.service.metrics import Metrics
from edge_agent.service.snapshot import daemon_snapshot
from edge_agent.service.state import DaemonState
from edge_agent.settings import Settings
from tests.outbox.helpers import BOOT, open_outbox, reading
from tests.service.helpers import Samples, samples_of


def _samples(metrics: Metrics) -> Samples:
    return samples_of(generate_latest(metrics.registry).decode())


def test_gap_drops_quarantine_and_salvage_are_counted(tmp_path: Path) -> None:
    settings = Settings(device={"id": "metrics-test"})  # type: ignore[arg-type]
    db = tmp_path / "outbox.db"

    async def fill(n: int) -> None:
        outbox = await open_outbox(db)
        await outbox.append([reading(i) for i in range(n)])
        await outbox.close()

    asyncio.run(fill(300))
    with db.open("r+b") as f:  # a garbage header: quarantined at the next open
        f.write(os.urandom(100))

    async def main() -> tuple[Samples, dict[str, object], Samples]:
        outbox = await open_outbox(db, max_bytes=8000)
        assert outbox.quarantined is not None
        first = daemon_snapshot(settings, DaemonState(outbox=outbox), ClockWatch("none"))["outbox"]
        assert first["quarantines"] == 1 and first["quarantined"] == str(outbox.quarantined)
        report = await salvage(outbox.quarantined, outbox)  # over the small cap: evictions, gaps
        await outbox.close()
        outbox = await open_outbox(db, max_bytes=8000)
        writer = OutboxWriter(outbox)
        state = DaemonState(outbox=outbox, writer=writer)
        metrics = Metrics(lambda: daemon_snapshot(settings, state, ClockWatch("none")))
        metrics.follow_gap_events(outbox)
        run = asyncio.create_task(writer.run())
        emit = metrics.counting(writer.submit_or_drop)
        before = _samples(metrics)
        for i in range(50):  # each over the cap: evictions announced by gap events
            await emit(reading(i))
        # A reading that has no wire form (NaN) is refused: dropped, counted.
        await emit(NewEvent.now("reading", "climate", {"value": math.nan}, boot=BOOT))
        await writer.stop()
        await run
        after = _samples(metrics)
        snap = daemon_snapshot(settings, state, ClockWatch("none"))
        await outbox.close()
        assert report.recovered > 0
        return before, snap["outbox"], after

    before, outbox_snap, after = asyncio.run(main())
    assert before[("edge_agent_outbox_salvaged_events_total", ())] > 0
    gaps = after[("edge_agent_events_total", (("kind", "gap"),))]
    assert gaps >= 1 and gaps == outbox_snap["gap_events"]
    assert after[("edge_agent_events_total", (("kind", "reading"),))] == 50
    assert after[("edge_agent_outbox_dropped_events_total", (("reason", "invalid_event"),))] == 1
    assert outbox_snap["dropped_events"]["invalid_event"] == 1  # type: ignore[index]
    assert after[("edge_agent_outbox_disk_full_episodes_total", ())] == 0
    # The file reopened after the salvage is not a quarantine of this start.
    assert after[("edge_agent_outbox_quarantines_total", ())] == 0
    assert outbox_snap["salvaged_events"] == after[("edge_agent_outbox_salvaged_events_total", ())]


def test_events_exported_with_mark_exported_are_counted_on_metrics_and_in_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """3000 pending events leave by ``buffer export --mark-exported``: an operator watching
    /metrics or ``status`` must see where they went, not a pending count that just fell."""
    settings = Settings(device={"id": "metrics-test"})  # type: ignore[arg-type]
    db = tmp_path / "outbox.db"

    async def main() -> tuple[dict[str, object], Samples]:
        outbox = await open_outbox(db)
        await outbox.append([reading(i) for i in range(40)])
        assert await outbox.mark_exported(tmp_path / "events.jsonl") == 40
        await outbox.close()
        outbox = await open_outbox(db)  # the daemon's next start
        metrics = Metrics(lambda: daemon_snapshot(settings, DaemonState(outbox=outbox), ClockWatch("none")))
        snap = daemon_snapshot(settings, DaemonState(outbox=outbox), ClockWatch("none"))
        samples = _samples(metrics)
        await outbox.close()
        return snap, samples

    snap, samples = asyncio.run(main())
    assert snap["outbox"]["exported_events"] == 40  # type: ignore[index]
    assert samples[("edge_agent_outbox_exported_events_total", ())] == 40
    assert samples[("edge_agent_outbox_pending_events", ())] == 1  # the gap event announcing them
    assert all(v == 0 for (name, _), v in samples.items() if name == "edge_agent_outbox_evicted_events_total")
    render(snap)
    assert "40 exported" in " ".join(capsys.readouterr().out.split())


def test_a_disk_full_episode_is_counted_on_metrics_and_in_status(tmp_path: Path) -> None:
    """SQLite's SQLITE_FULL (``max_page_count`` stands in for a full card): one episode,
    however many errors it took, on /metrics and in ``status --json``, beside its gap event."""
    settings = Settings(device={"id": "metrics-test"})  # type: ignore[arg-type]

    async def main() -> tuple[dict[str, object], Samples]:
        outbox = await open_outbox(tmp_path / "outbox.db", pragmas={"max_page_count": 60})
        state = DaemonState(outbox=outbox)
        metrics = Metrics(lambda: daemon_snapshot(settings, state, ClockWatch("none")))
        for r in range(40):
            await outbox.append([reading(r * 50 + i) for i in range(50)])
            if (await outbox.stats()).evicted_by_reason["disk_full"]:
                break
        snap = daemon_snapshot(settings, state, ClockWatch("none"))
        samples = _samples(metrics)
        await outbox.close()
        return snap["outbox"], samples

    outbox_snap, samples = asyncio.run(main())
    assert samples[("edge_agent_outbox_disk_full_episodes_total", ())] == 1
    assert outbox_snap["disk_full_episodes"] == 1
    assert outbox_snap["gap_events"] == 1  # the episode's eviction, announced once
