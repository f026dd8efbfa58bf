"""The real daemon while another process holds the outbox locked (``BEGIN EXCLUSIVE``).

Readings made meanwhile cannot be committed: they never get a seq.  They must be counted
by reason in ``status --json`` and ``/metrics``, and announced to the cloud by a ``gap``
event carrying their count, once commits work again (docs/PROTOCOL.md, "gap").
"""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.daemon.agent_process import (
    Subscriber,
    daemon_status,
    outbox_ready,
    start_agent,
    stop_agent,
    wait_until,
    write_config,
)
from tests.mosquitto import Mosquitto
from tests.service.test_isolation import scrape

DEVICE = "crash-test"


@contextlib.contextmanager
def _foreign_lock(db: Path) -> Iterator[None]:
    """Another process's ``BEGIN EXCLUSIVE`` on the outbox: the daemon's commits fail."""
    locker = sqlite3.connect(db, timeout=10, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        locker.execute("ROLLBACK")
        locker.close()


def _dropped(state: Path) -> int:
    snap = daemon_status(state)
    return sum(snap["outbox"]["dropped_events"].values()) if snap else 0


def test_readings_dropped_under_a_foreign_lock_are_counted_and_announced(tmp_path: Path) -> None:
    state = tmp_path / "state"
    db = state / "outbox.db"
    with Mosquitto(tmp_path / "broker") as broker:
        # A commit gives up after 0.2 s (not 5 s) so that a lock of ~1 s drops readings.
        config = write_config(tmp_path, broker, storage_extra='commit_timeout = "200ms"')
        sub = Subscriber(broker, DEVICE)
        log = tmp_path / "agent.log"
        agent = start_agent(config, log)
        try:
            assert wait_until(lambda: outbox_ready(db) and len(sub.of_kind("reading")) >= 10, 30), (
                log.read_text()[-3000:]
            )
            assert _dropped(state) == 0
            with _foreign_lock(db):
                assert wait_until(lambda: _dropped(state) >= 20, 30), log.read_text()[-3000:]

            def announced() -> bool:
                snap = daemon_status(state)
                return bool(snap and snap["outbox"]["dropped_unannounced"] == 0)

            assert wait_until(announced, 15), log.read_text()[-3000:]
            snap = daemon_status(state)
            assert snap is not None
            gaps = [g for g in sub.of_kind("gap") if g["data"]["reason"] == "not_committed"]
            total = sum(snap["outbox"]["dropped_events"].values())
            assert wait_until(lambda: sum(g["data"]["count"] for g in sub.of_kind("gap")) >= total, 15)
            as_json = subprocess.run(
                [sys.executable, "-m", "edge_agent", "status", "--json", "--config", str(config)],
                capture_output=True,
                text=True,
                timeout=60,
            )
            samples = scrape(snap["metrics"])
        finally:
            code = stop_agent(agent)
            sub.close()
    assert code == 0, log.read_text()[-3000:]

    gaps = [g for g in sub.of_kind("gap") if g["data"]["reason"] == "not_committed"]
    outbox = snap["outbox"]
    # The lock shows as "outbox_busy", nothing else was dropped.
    by_reason = {r: n for r, n in outbox["dropped_events"].items() if n}
    assert set(by_reason) == {"outbox_busy"}, by_reason
    total = by_reason["outbox_busy"]
    # What the subscriber received accounts for every drop, once.
    assert sum(g["data"]["count"] for g in gaps) == total == outbox["dropped_announced"]
    assert sum(g["data"]["dropped"]["outbox_busy"] for g in gaps) == total
    for gap in gaps:
        assert gap["data"]["evicted"] == [] and gap["sensor"] is None
        assert gap["data"]["first_ts"] <= gap["data"]["last_ts"]
    # The sensors whose readings were lost say so.
    assert sum(s["dropped"] for s in snap["sensors"]) == total
    # status --json (the CLI) and /metrics say the same.
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["outbox"]["dropped_events"]["outbox_busy"] == total
    assert samples[("edge_agent_outbox_dropped_events_total", (("reason", "outbox_busy"),))] == total
    assert samples[("edge_agent_outbox_dropped_unannounced_events", ())] == 0
    assert samples[("edge_agent_events_total", (("kind", "gap"),))] == len(gaps)
    assert "not committed" in log.read_text()


def test_drops_not_announced_at_a_stop_are_announced_by_the_next_start(tmp_path: Path) -> None:
    state = tmp_path / "state"
    db = state / "outbox.db"
    saved = state / "dropped.json"
    with Mosquitto(tmp_path / "broker") as broker:
        config = write_config(tmp_path, broker, storage_extra='commit_timeout = "200ms"')
        sub = Subscriber(broker, DEVICE)
        log = tmp_path / "agent.log"
        agent = start_agent(config, log)
        try:
            assert wait_until(lambda: outbox_ready(db) and len(sub.of_kind("reading")) >= 5, 30), (
                log.read_text()[-3000:]
            )
            with _foreign_lock(db):
                assert wait_until(lambda: _dropped(state) >= 5, 30), log.read_text()[-3000:]
                seen = _dropped(state)
                # Stopped while the lock holds: no gap event can be committed before the end.
                agent.send_signal(signal.SIGTERM)
                assert wait_until(saved.exists, 30), log.read_text()[-3000:]
            assert agent.wait(timeout=30) == 0, log.read_text()[-3000:]
            kept = json.loads(saved.read_text())
            assert kept["count"] >= seen and kept["reason"] == "not_committed"
            assert not [g for g in sub.of_kind("gap") if g["data"]["reason"] == "not_committed"]

            agent = start_agent(config, log)

            def announced() -> list[dict[str, Any]]:
                return [g for g in sub.of_kind("gap") if g["data"]["reason"] == "not_committed"]

            assert wait_until(lambda: bool(announced()), 30), log.read_text()[-3000:]
            assert wait_until(lambda: not saved.exists(), 10)
            snap = daemon_status(state)
        finally:
            stop_agent(agent)
            sub.close()
    # The subscriber received the previous run's drops, once, with their count and reasons.
    (gap,) = announced()
    assert gap["data"]["count"] == kept["count"]
    assert gap["data"]["dropped"] == kept["dropped"] == {"outbox_busy": kept["count"]}
    assert gap["data"]["first_ts"] == kept["first_ts"]
    assert snap is not None and snap["outbox"]["dropped_announced"] == kept["count"]
    assert snap["outbox"]["dropped_unannounced"] == 0
