"""Real ``edge-agent run`` daemons in ``mqtt.delivery = "end-to-end"`` through the real ingest:
their outboxes drain to zero, and a broker restarted without persistence loses nothing."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from edge_agent.outbox import read_stats
from tests.cloud.ingest_write.conftest import consumer_settings, running
from tests.cloud.ingest_write.processes import agent_config
from tests.cloud.ingest_write.publisher import wait_for
from tests.daemon.agent_process import pending, start_agent, stop_agent
from tests.mosquitto import Mosquitto


def stored(engine: Engine, device_id: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT count(*) FROM event_ids WHERE device_id = :d"), {"d": device_id}
            ).scalar_one()
        )


def received(engine: Engine, device_id: str) -> list[tuple[str, int, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT epoch, first_seq, last_seq FROM received_ranges WHERE device_id = :d ORDER BY epoch"
            ),
            {"d": device_id},
        )
        return [(str(e), int(f), int(last)) for e, f, last in rows]


def quarantined(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [(str(r), str(d)) for r, d in conn.execute(sa.text("SELECT reason, detail FROM quarantine"))]


def drain(tmp_path: Path, broker: Mosquitto, device_ids: list[str], engine: Engine) -> None:
    """Stop each sampling agent, run it again without sensors until its outbox is empty,
    and check that the ingest holds every seq it ever made, once."""
    for device_id in device_ids:
        directory = tmp_path / device_id
        config = agent_config(directory, broker, device_id, sampling=False)
        log = directory / "agent.log"
        ready_before = log.read_text().count('msg="ready:')
        agent = start_agent(config, log)
        db = directory / "state" / "outbox.db"
        try:
            wait_for(
                lambda log=log, n=ready_before: log.read_text().count('msg="ready:') > n, 30, "the agent up"
            )
            wait_for(lambda db=db: pending(db) == 0, 60, f"{device_id}'s outbox to drain")
        finally:
            assert stop_agent(agent) == 0
        stats = read_stats(db)
        assert stats.pending == 0
        made = stats.next_seq - 1
        assert received(engine, device_id) == [(stats.epoch, 1, made)], "every seq, nothing missing"
        assert stored(engine, device_id) == made, ("each event once", quarantined(engine))


def test_an_agent_in_end_to_end_mode_drains_its_outbox_to_zero_through_the_ingest(
    tmp_path: Path, database_url: str, engine: Engine, broker: Mosquitto
) -> None:
    directory = tmp_path / "agent-1"
    db = directory / "state" / "outbox.db"
    agent = start_agent(agent_config(directory, broker, "agent-1"), directory / "agent.log")
    try:
        # No ingest yet: with end-to-end delivery the events stay in the outbox.
        wait_for(lambda: pending(db) >= 100, 60, "a backlog in the outbox")
        with running(consumer_settings(tmp_path, database_url, broker), engine):
            wait_for(lambda: stored(engine, "agent-1") >= 200, 60, "the backlog stored")
            assert stop_agent(agent) == 0
            drain(tmp_path, broker, ["agent-1"], engine)
    finally:
        if agent.poll() is None:
            stop_agent(agent, kill=True)


def test_a_broker_restarted_without_persistence_while_agents_send_loses_nothing(
    tmp_path: Path, database_url: str, engine: Engine, broker: Mosquitto
) -> None:
    names = ["agent-a", "agent-b"]
    agents = [start_agent(agent_config(tmp_path / n, broker, n), tmp_path / n / "agent.log") for n in names]
    try:
        with running(consumer_settings(tmp_path, database_url, broker), engine) as consumer:
            wait_for(lambda: all(stored(engine, n) >= 40 for n in names), 60, "both agents storing")
            before = {n: stored(engine, n) for n in names}
            broker.restart(kill=True)  # no persistence: sessions, subscriptions and queues gone
            wait_for(lambda: all(stored(engine, n) >= before[n] + 40 for n in names), 60, "storing again")
            assert consumer.metrics.registry.get_sample_value("edge_ingest_broker_connects_total") == 2
            for agent in agents:
                assert stop_agent(agent) == 0
            drain(tmp_path, broker, names, engine)
    finally:
        for agent in agents:
            if agent.poll() is None:
                stop_agent(agent, kill=True)
