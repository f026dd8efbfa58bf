"""The real daemon when its storage runs out during an outage: the size cap, a full disk.

The documented behaviour (docs/DURABILITY.md): the oldest readings are evicted, every
eviction is counted and announced by a ``gap`` event naming the evicted seq ranges, and
sampling goes on.  So once the broker is back, a subscriber can account for every seq
of the epoch: it either arrived or a gap event says it was evicted, never both.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from edge_agent.outbox import OutboxStats, read_stats
from edge_agent.outbox.reserve import DEFAULT_RESERVE, Reserve
from tests.daemon.agent_process import (
    Subscriber,
    outbox_ready,
    start_agent,
    stop_agent,
    wait_until,
    write_config,
)
from tests.mosquitto import Mosquitto
from tests.tmpfs import fill, small_tmpfs

DEVICE = "crash-test"


def stats_json(config: Path) -> dict[str, Any]:
    """What ``edge-agent buffer stats --json`` says (the technician's view, read-only, daemon running)."""
    out = subprocess.run(
        [sys.executable, "-m", "edge_agent", "buffer", "stats", "--json", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def evicted(db: Path, reason: str) -> int:
    try:
        return read_stats(db).evicted_by_reason[reason]
    except Exception:  # not created yet, or mid-migration
        return 0


def outage_then_drain(
    tmp_path: Path, config: Path, db: Path, broker: Mosquitto, reason: str, *, on_outbox: Any = None
) -> tuple[Subscriber, OutboxStats, OutboxStats, dict[str, Any], str]:
    """Run the daemon with the broker down until ``reason`` evicted enough, then bring the
    broker up and let it drain.  Returns the subscriber, the stats before the broker came
    up, the stats after a clean stop, what ``buffer stats --json`` says then, and the log."""
    log = tmp_path / "agent.log"
    agent = start_agent(config, log)
    try:
        # The reserve too: it is allocated once the outbox is open (opening.py), and a disk
        # filled before that leaves a daemon without it (stress run, 8 workers on 2 cores).
        reserve = Reserve(db.with_name(db.name + ".reserve"), DEFAULT_RESERVE)
        assert wait_until(lambda: outbox_ready(db) and reserve.held, 30), log.read_text()[-3000:]
        if on_outbox is not None:
            on_outbox()
        assert wait_until(lambda: evicted(db, reason) >= 100, 90), log.read_text()[-3000:]
        assert agent.poll() is None, "the daemon must survive running out of room"
        before = read_stats(db)
        broker.start()
        sub = Subscriber(broker, DEVICE, persistent=True)
        try:
            # Fresh readings keep arriving after the backlog: sampling went on.
            assert wait_until(lambda: max(sub.seqs(), default=0) >= before.next_seq + 20, 60), (
                log.read_text()[-3000:]
            )
        finally:
            code = stop_agent(agent)
            agent = None
            # The clean stop published what was committed; give the last messages a moment.
            after = read_stats(db)
            wait_until(lambda: set(range(1, after.next_seq)) <= sub.seqs() | sub.announced_evicted(), 15)
            sub.close()
    finally:
        if agent is not None:
            stop_agent(agent, kill=True)
        broker.stop()
    assert code == 0, log.read_text()[-3000:]
    return sub, before, after, stats_json(config), log.read_text()


def check_accounting(sub: Subscriber, before: OutboxStats, after: OutboxStats, reason: str) -> set[int]:
    """Every committed seq arrived or was announced evicted, never both; returns the evicted."""
    assert after.pending == 0, "a clean stop with the broker up publishes what is committed"
    epochs = {e["epoch"] for e in sub.events}
    assert epochs == {after.epoch}
    announced = sub.announced_evicted()
    seen = sub.seqs()
    committed = set(range(1, after.next_seq))
    assert not announced & seen, f"evicted and delivered: {sorted(announced & seen)[:20]}"
    missing = committed - seen - announced
    assert not missing, f"neither delivered nor announced evicted: {sorted(missing)[:20]}"
    assert announced == sub.announced_evicted(reason), "only the expected reason evicted here"
    gaps = sub.of_kind("gap")
    assert sum(g["data"]["count"] for g in gaps) >= len(announced)  # folded gaps announce again
    assert after.evicted_by_reason[reason] == len(announced)
    # The oldest readings went first: while the broker was down nothing was delivered, so
    # everything evicted by then is older than every reading still pending then.
    early = {
        s
        for g in gaps
        if g["seq"] < before.next_seq
        for a, b in g["data"]["evicted"]
        for s in range(a, b + 1)
    }
    survivors = [e["seq"] for e in sub.of_kind("reading") if e["seq"] < before.next_seq]
    # (On a loaded machine the room can run out again before the uplink connects, evicting
    # every reading of the outage: then none survived, which is oldest-first all the same.)
    assert early and (not survivors or max(early) < min(survivors))
    # Status events (the "started" one is seq 1) are kept while there are readings to evict:
    # it goes only once every reading of the outage has gone before it (the loaded-machine
    # case above, where the room runs out again before the uplink connects).
    statuses = {e["seq"] for e in sub.of_kind("status")}
    assert 1 in statuses or (1 in announced and not survivors)
    return announced


def test_size_cap_reached_during_an_outage_gap_names_exactly_the_evicted_seqs(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker", persistence=True)
    with broker:  # a subscriber session the broker keeps while it is down
        Subscriber(broker, DEVICE, persistent=True).close()
    config = write_config(tmp_path, broker, interval="50ms", storage_extra='max_bytes = "40KiB"')
    db = tmp_path / "state" / "outbox.db"
    sub, before, after, cli, log = outage_then_drain(tmp_path, config, db, broker, "size_cap")

    announced = check_accounting(sub, before, after, "size_cap")
    assert after.evicted_total == len(announced) and after.evicted_by_reason["disk_full"] == 0
    # The technician's view agrees with what the cloud was told.
    assert cli["evicted_total"] == cli["evicted_by_reason"]["size_cap"] == len(announced)
    assert "evicted" in log and "size_cap" in log


def test_disk_full_during_an_outage_evicts_oldest_and_sampling_goes_on(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker", persistence=True)
    with broker:
        Subscriber(broker, DEVICE, persistent=True).close()
    with small_tmpfs(tmp_path / "mnt", "16m") as mnt:
        config = write_config(tmp_path, broker, interval="50ms", state_dir=mnt / "state")
        db = mnt / "state" / "outbox.db"
        # Once the outbox (and its 8 MiB reserve) exists, fill the card with something else.
        sub, before, after, cli, log = outage_then_drain(
            tmp_path, config, db, broker, "disk_full", on_outbox=lambda: fill(mnt, leave=96 * 1024)
        )
        announced = check_accounting(sub, before, after, "disk_full")
        assert after.disk_full_count >= 1 and after.evicted_by_reason["size_cap"] == 0
        assert cli["disk_full_count"] >= 1
        assert cli["evicted_total"] == cli["evicted_by_reason"]["disk_full"] == len(announced)
        assert "the disk is full" in log


def test_a_restart_on_a_full_disk_keeps_the_outbox_and_goes_on_sampling(tmp_path: Path) -> None:
    """A clean stop, the card filled by something else, a start: the daemon opens the same
    outbox (same epoch, nothing quarantined) on its reserve's room and keeps committing,
    evicting the oldest readings for room, instead of failing every start."""
    broker = Mosquitto(tmp_path / "broker")  # never started: an outage throughout
    with small_tmpfs(tmp_path / "mnt", "16m") as mnt:
        config = write_config(tmp_path, broker, interval="50ms", state_dir=mnt / "state")
        db = mnt / "state" / "outbox.db"
        log = tmp_path / "agent.log"
        agent = start_agent(config, log)
        try:
            assert wait_until(lambda: outbox_ready(db) and read_stats(db).next_seq > 50, 30), log.read_text()[
                -3000:
            ]
        finally:
            assert stop_agent(agent) == 0, log.read_text()[-3000:]
        first = read_stats(db)
        fill(mnt, leave=0)

        agent = start_agent(config, log)
        try:
            # Committing again, well past where it stopped, and evicting for room.
            assert wait_until(
                lambda: evicted(db, "disk_full") > 0 and read_stats(db).next_seq > first.next_seq + 100, 60
            ), log.read_text()[-3000:]
            assert agent.poll() is None, "the daemon must run on a full disk"
        finally:
            assert stop_agent(agent) == 0, log.read_text()[-3000:]
        assert read_stats(db).epoch == first.epoch
        assert not list((mnt / "state").glob("outbox.db.corrupt-*"))
