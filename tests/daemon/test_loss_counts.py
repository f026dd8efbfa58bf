"""Quarantine, salvage and eviction counts of the real daemon against what a subscriber received.

The daemon commits readings with no broker; its outbox then loses its first sector, so the
next start quarantines it (and says so by a status event); ``edge-agent buffer salvage``
recovers the old file into an outbox capped small enough that salvaging evicts; the last
start delivers the rest.  ``status --json`` and ``/metrics`` must count exactly the
quarantine notes, the re-delivered old events and the seqs of the gap events received.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from edge_agent.outbox import read_stats
from tests.daemon.agent_process import (
    Subscriber,
    daemon_status,
    outbox_ready,
    pending,
    start_agent,
    stop_agent,
    wait_until,
    write_config,
)
from tests.mosquitto import Mosquitto
from tests.service.test_isolation import scrape

DEVICE = "crash-test"
CAP = 'max_bytes = "16KiB"'


def _status_json(config: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "edge_agent", "status", "--json", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def _ids(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {json.loads(body)["id"] for (body,) in conn.execute("SELECT body FROM events")}


def seqs_announced(gaps: list[dict[str, Any]]) -> set[int]:
    return {seq for gap in gaps for first, last in gap["data"]["evicted"] for seq in range(first, last + 1)}


def test_quarantined_salvaged_and_evicted_counts_match_what_a_subscriber_received(tmp_path: Path) -> None:
    state = tmp_path / "state"
    db = state / "outbox.db"
    log = tmp_path / "agent.log"
    with Mosquitto(tmp_path / "broker") as broker:
        broker.stop()
        # Run 1, no broker, no small cap: every reading stays pending in the file.
        config = write_config(tmp_path, broker)
        agent = start_agent(config, log)
        try:
            assert wait_until(lambda: pending(db) >= 100, 30), log.read_text()[-3000:]
        finally:
            assert stop_agent(agent) == 0, log.read_text()[-3000:]
        old_ids = _ids(db)
        with db.open("r+b") as f:  # the first sector lost: quarantined at the next open
            f.write(bytes(512))

        # Run 2, with the broker: the quarantine is announced and counted.
        broker.start()
        sub = Subscriber(broker, DEVICE)
        config = write_config(tmp_path, broker, storage_extra=CAP)
        agent = start_agent(config, log)
        try:

            def notes() -> list[dict[str, Any]]:
                return [e for e in sub.of_kind("status") if e["data"].get("event") == "outbox_quarantined"]

            assert wait_until(lambda: bool(notes()) and daemon_status(state) is not None, 30), (
                log.read_text()[-3000:]
            )
            quarantine_status = _status_json(config)["outbox"]
            snap = daemon_status(state)
            assert snap is not None
            quarantine_metrics = scrape(snap["metrics"])
        finally:
            assert stop_agent(agent) == 0, log.read_text()[-3000:]
        (moved,) = state.glob("outbox.db.corrupt-*Z")
        assert notes()[0]["data"]["quarantined_file"] == str(moved)

        # Salvage (daemon stopped) into an outbox capped at 16 KiB: the oldest are evicted.
        # Run 3 reads slowly, so fresh readings rarely compete with the salvaged ones for the cap.
        config = write_config(tmp_path, broker, storage_extra=CAP, interval="1s")
        before_salvage = read_stats(db).next_seq
        salvage = subprocess.run(
            [sys.executable, "-m", "edge_agent", "buffer", "salvage", str(moved), "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert salvage.returncode == 0, salvage.stdout + salvage.stderr
        after_salvage = read_stats(db)
        epoch = after_salvage.epoch
        salvaged_range = range(before_salvage, after_salvage.next_seq)
        received_before = {e["id"] for e in sub.events}

        # Run 3: what is left is delivered; the counts must match what arrived.
        agent = start_agent(config, log)
        try:

            def salvaged_received() -> set[str]:
                return {e["id"] for e in sub.events if e["id"] in old_ids} - received_before

            def settled() -> bool:
                snap = daemon_status(state)
                return bool(snap and outbox_ready(db) and pending(db) < 50 and salvaged_received())

            assert wait_until(settled, 30), log.read_text()[-3000:]
            snap = daemon_status(state)
            assert snap is not None
            salvaged_total = snap["outbox"]["salvaged_events"]
            # Every salvaged event is either received or named by a received gap event.
            assert wait_until(
                lambda: len(salvaged_received()) + len(sub.announced_evicted()) >= salvaged_total, 30
            ), log.read_text()[-3000:]

            final_status: dict[str, Any] = {}
            gaps_received: list[dict[str, Any]] = []
            final_metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

            # Fresh readings may still overflow the small cap on a loaded machine, so the
            # counts are compared once they agree at one moment: status, the CLI's status,
            # metrics and the gap events received (each eviction is announced shortly after).
            def counts_agree() -> bool:
                nonlocal snap, final_status, final_metrics, gaps_received
                gaps_received = sub.of_kind("gap")
                live = daemon_status(state)
                if live is None:
                    return False
                snap = live
                final_status = _status_json(config)["outbox"]
                final_metrics = scrape(live["metrics"])
                evicted = sum(live["outbox"]["evicted_events"].values())
                metered = sum(
                    v
                    for (name, _), v in final_metrics.items()
                    if name == "edge_agent_outbox_evicted_events_total"
                )
                return bool(
                    final_status["evicted_events"] == live["outbox"]["evicted_events"]
                    and len(seqs_announced(gaps_received)) == evicted == metered
                )

            assert wait_until(counts_agree, 30), log.read_text()[-3000:]
            evicted_total = sum(snap["outbox"]["evicted_events"].values())
        finally:
            assert stop_agent(agent) == 0, log.read_text()[-3000:]
            sub.close()

    assert quarantine_status["quarantines"] == len(notes()) == 1
    assert quarantine_metrics[("edge_agent_outbox_quarantines_total", ())] == 1

    gaps = [g for g in gaps_received if g["epoch"] == epoch]
    evicted_seqs = seqs_announced(gaps_received)
    assert evicted_total > 0 and len(gaps) > 0
    assert len(evicted_seqs) == sum(last - first + 1 for g in gaps for first, last in g["data"]["evicted"])
    assert final_status["evicted_events"] == snap["outbox"]["evicted_events"]
    assert len(evicted_seqs) == evicted_total
    assert sum(
        v for (name, _), v in final_metrics.items() if name == "edge_agent_outbox_evicted_events_total"
    ) == (evicted_total)

    received = salvaged_received()
    assert received and received <= old_ids
    # Fresh readings of run 3 may be evicted too (the cap is small): only the salvaged seqs count here.
    salvaged_evicted = {seq for seq in evicted_seqs if seq in salvaged_range}
    assert len(received) + len(salvaged_evicted) == salvaged_total == final_status["salvaged_events"]
    assert len(salvaged_range) == salvaged_total
    assert final_metrics[("edge_agent_outbox_salvaged_events_total", ())] == salvaged_total
    # The salvaged events that arrived and the evicted seqs do not overlap.
    salvaged_seqs = {e["seq"] for e in sub.events if e["id"] in received and e["epoch"] == epoch}
    assert not salvaged_seqs & evicted_seqs
