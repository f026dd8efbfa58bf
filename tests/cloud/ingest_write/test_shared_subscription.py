"""Two ``edge-ingest serve`` processes in one share group: they split the messages, and
neither stores what the other stored."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine

from tests.cloud.ingest_write.helpers import Device, count
from tests.cloud.ingest_write.processes import IngestProcess, ingest_config
from tests.cloud.ingest_write.publisher import DevicePublisher, wait_for
from tests.mosquitto import Mosquitto


def test_two_processes_share_the_load_and_store_each_event_once(
    tmp_path: Path, database_url: str, engine: Engine, broker: Mosquitto
) -> None:
    state = tmp_path / "shared-state"  # one host: slots 0 and 1 of the same folder
    a = IngestProcess(
        ingest_config(tmp_path / "a", database_url, broker, state_dir=state), tmp_path / "a.log"
    )
    b = IngestProcess(
        ingest_config(tmp_path / "b", database_url, broker, state_dir=state), tmp_path / "b.log"
    )
    devices = [Device(f"share-{i}") for i in range(4)]
    publishers: list[DevicePublisher] = []
    try:
        a.start()
        b.start()
        assert "-0 (session" in a.log and "-1 (session" in b.log, "distinct client ids from the slots"
        publishers = [DevicePublisher(broker.port, d.device_id) for d in devices]
        for _ in range(40):
            for d, pub in zip(devices, publishers, strict=True):
                pub.client.publish(f"devices/{d.device_id}/events", d.payload(d.readings(50)), qos=1)
        total = 40 * 4 * 50
        wait_for(lambda: count(engine, "event_ids") == total, 60, f"all {total} events stored")
        for d, pub in zip(devices, publishers, strict=True):
            wait_for(lambda d=d, pub=pub: pub.acked() >= set(range(1, d.next_seq)), 30, "every seq acked")
        wait_for(lambda: a.stored() + b.stored() == total, 10, "both logs to show their commits")
        assert a.stop() == 0 and b.stop() == 0
    finally:
        for pub in publishers:
            pub.close()
        for p in (a, b):
            if p.process is not None and p.process.poll() is None:
                p.stop(kill=True)
    assert a.stored() > 0 and b.stored() > 0, (a.stored(), b.stored())
    assert a.stored() + b.stored() == total
    assert a.duplicates() + b.duplicates() == 0, "no message went to both"
    assert count(engine, "readings") == 2 * total
