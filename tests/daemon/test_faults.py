"""The daemon under faults, end to end: it keeps sampling and says what happened."""

from __future__ import annotations

from pathlib import Path

from edge_agent.outbox import read_stats
from tests.daemon.agent_process import (
    Subscriber,
    left_pending_up_to,
    pending,
    start_agent,
    stop_agent,
    wait_until,
    write_config,
)
from tests.mosquitto import Mosquitto


def test_corrupt_outbox_at_start_is_quarantined_and_sampling_goes_on(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "outbox.db").write_bytes(b"SQLite format 3\x00" + b"\xde\xad\xbe\xef" * 4096)
    with Mosquitto(tmp_path / "broker") as broker:
        sub = Subscriber(broker, "crash-test")
        config = write_config(tmp_path, broker, interval="100ms")
        log = tmp_path / "agent.log"
        agent = start_agent(config, log)
        try:
            ok = wait_until(lambda: sum(e["kind"] == "reading" for e in sub.events) >= 10, 15)
        finally:
            code = stop_agent(agent)
            sub.close()
        assert ok, log.read_text()[-3000:]
    assert code == 0
    assert pending(state / "outbox.db") == 0, "a clean stop with the broker up publishes what is committed"
    moved = list(state.glob("outbox.db.corrupt-*"))
    assert len(moved) == 1 and moved[0].read_bytes().startswith(b"SQLite format 3"), "the bad file is kept"
    notes = [
        e for e in sub.events if e["kind"] == "status" and e["data"].get("event") == "outbox_quarantined"
    ]
    assert notes and notes[0]["data"]["quarantined_file"] == str(moved[0])
    assert {e["epoch"] for e in sub.events} == {read_stats(state / "outbox.db").epoch}
    assert "quarantin" in log.read_text().lower()


def test_broker_down_at_start_daemon_buffers_then_drains(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker", persistence=True)
    with broker:  # a subscriber session the broker keeps across its own restart
        Subscriber(broker, "crash-test", persistent=True).close()
    config = write_config(tmp_path, broker, interval="100ms")
    log = tmp_path / "agent.log"
    db = tmp_path / "state" / "outbox.db"
    agent = start_agent(config, log)  # the broker is down: the daemon must buffer
    try:
        assert wait_until(lambda: pending(db) >= 20, 15), log.read_text()[-3000:]
        buffered = read_stats(db).next_seq - 1
        broker.start()
        sub = Subscriber(broker, "crash-test", persistent=True)
        try:
            assert wait_until(lambda: set(range(1, buffered + 1)) <= sub.seqs(), 20), log.read_text()[-3000:]
            assert wait_until(lambda: left_pending_up_to(db, buffered), 10)
        finally:
            sub.close()
    finally:
        stop_agent(agent)
        broker.stop()
    # A clean stop with the broker up publishes what is committed and waits for nothing else
    # (acknowledged deletes waiting for an append that will not come made it time out).
    assert "did not finish" not in log.read_text(), log.read_text()[-3000:]
    readings = [e["seq"] for e in sub.events if e["kind"] == "reading" and e["seq"] <= buffered]
    assert readings == sorted(readings), "the backlog drains oldest first"
