"""``edge-ingest serve`` SIGKILLed in the middle of a stream and started again: nothing
lost, nothing doubled.  The restarted process comes back as the same client id (its
slot), resumes its session, and is given again what it had not acknowledged."""

from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.cloud.ingest_write.helpers import Device, count
from tests.cloud.ingest_write.processes import IngestProcess, ingest_config
from tests.cloud.ingest_write.publisher import DevicePublisher, wait_for
from tests.mosquitto import Mosquitto

DEVICES = 4
BATCHES = 60  # per device, 100 events each: 24,000 events


def test_sigkill_mid_stream_then_restart_loses_nothing_and_doubles_nothing(
    tmp_path: Path, database_url: str, engine: Engine, broker: Mosquitto
) -> None:
    config = ingest_config(
        tmp_path / "ingest", database_url, broker, batch_max_events=1000, receive_maximum=20
    )
    ingest = IngestProcess(config, tmp_path / "ingest.log").start()
    devices = [Device(f"kill-{i}") for i in range(DEVICES)]
    publishers = [DevicePublisher(broker.port, d.device_id) for d in devices]
    try:
        for _ in range(BATCHES):
            for d, pub in zip(devices, publishers, strict=True):
                pub.client.publish(f"devices/{d.device_id}/events", d.payload(d.readings(100)), qos=1)
        total = DEVICES * BATCHES * 100
        # Kill it while it is storing: some committed, most not.
        wait_for(lambda: count(engine, "event_ids") >= total // 10, 60, "a tenth stored")
        assert ingest.stop(kill=True) == -9
        at_kill = count(engine, "event_ids")
        assert at_kill < total, "the kill came too late to test anything"
        ingest.start()
        assert "(session resumed)" in ingest.log, "the restart must resume the same session"
        wait_for(lambda: count(engine, "event_ids") == total, 120, f"all {total} events stored")
        # Acks the killed process had committed but not yet sent are gone with it; a device
        # sends what stays unacknowledged again (after its ack_timeout), as these do now.
        wait_for(lambda: _quiet(publishers), 30, "acks to settle")
        for d, pub in zip(devices, publishers, strict=True):
            missing = set(range(1, d.next_seq)) - pub.acked()
            for start in range(0, len(d.made), 100):
                batch = d.made[start : start + 100]
                if missing & {e["seq"] for e in batch}:
                    pub.client.publish(f"devices/{d.device_id}/events", d.payload(batch), qos=1)
            wait_for(lambda d=d, pub=pub: pub.acked() >= set(range(1, d.next_seq)), 30, "every seq acked")
        assert count(engine, "event_ids") == total
        assert ingest.stop() == 0
    finally:
        for pub in publishers:
            pub.close()
        if ingest.process is not None and ingest.process.poll() is None:
            ingest.stop(kill=True)
    assert count(engine, "readings") == 2 * total
    with engine.connect() as conn:
        doubled = conn.execute(
            sa.text(
                "SELECT count(*) FROM (SELECT event_id, series_id FROM readings GROUP BY event_id, series_id HAVING count(*) > 1) d"
            )
        ).scalar_one()
        ranges = conn.execute(
            sa.text("SELECT device_id, first_seq, last_seq FROM received_ranges ORDER BY device_id")
        ).all()
    assert doubled == 0
    assert ranges == [(d.device_id, 1, BATCHES * 100) for d in devices]
    assert {e["id"] for d in devices for e in d.made} == set(_ids(engine))


def _quiet(publishers: list[DevicePublisher]) -> bool:
    """No ack arrived for a moment (the restarted process has acknowledged what it stored)."""
    before = sum(p.ack_count() for p in publishers)
    time.sleep(0.5)
    return sum(p.ack_count() for p in publishers) == before


def _ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.text("SELECT id FROM event_ids"))]
