"""SIGKILL the daemon again and again while it samples fast: no committed seq is ever missing.

Duplicates are allowed on the wire (an event published just before the kill and not yet
deleted goes again); gaps never are.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from edge_agent.outbox.stats import read_stats
from tests.daemon.agent_process import (
    Subscriber,
    outbox_ready,
    start_agent,
    stop_agent,
    wait_until,
    write_config,
)
from tests.mosquitto import Mosquitto


def test_repeated_sigkill_loses_no_committed_event(tmp_path: Path) -> None:
    rng = random.Random(7)
    with Mosquitto(tmp_path / "broker") as broker:
        sub = Subscriber(broker, "crash-test")
        config = write_config(tmp_path, broker, interval="50ms")
        log = tmp_path / "agent.log"
        db = tmp_path / "state" / "outbox.db"
        epochs = set()
        try:
            for _ in range(6):
                agent = start_agent(config, log)
                assert wait_until(lambda: outbox_ready(db), 20), log.read_text()
                # Kill only after this run has committed something (however loaded the machine
                # is), then at a random moment.
                target = read_stats(db).next_seq + 20
                assert wait_until(lambda t=target: read_stats(db).next_seq >= t, 30), log.read_text()
                time.sleep(rng.uniform(0.0, 0.8))
                stop_agent(agent, kill=True)
                epochs.add(read_stats(db).epoch)
            readies = log.read_text().count('msg="ready:')
            agent = start_agent(config, log)
            # A SIGTERM before the daemon has installed its handler (Python still importing,
            # on a loaded machine) is the default action, not a clean stop: wait for "ready".
            assert wait_until(lambda: log.read_text().count('msg="ready:') > readies, 30), log.read_text()
            assert stop_agent(agent) == 0, log.read_text()[-3000:]
            stats = read_stats(db)
            committed = set(range(1, stats.next_seq))
            # Whatever is still pending goes out on the next start; everything else must have arrived.
            pending = stats.pending
            assert wait_until(lambda: len(committed - sub.seqs(stats.epoch)) <= pending, 10)
        finally:
            sub.close()
        assert epochs == {stats.epoch}, "a SIGKILL must never cost the database"
        missing = committed - sub.seqs(stats.epoch)
        assert len(missing) <= pending, f"missing {sorted(missing)[:20]} with only {pending} pending"
        assert stats.next_seq > 100, "the test did not sample fast enough to mean anything"
        readings = [e for e in sub.events if e["kind"] == "reading"]
        assert {e["sensor"] for e in readings} == {"climate", "cabinet"}
