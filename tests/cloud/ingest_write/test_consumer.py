"""The consumer against a real Mosquitto and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import Engine

from tests.cloud.ingest_write.conftest import consumer_settings, running
from tests.cloud.ingest_write.helpers import EPOCH, Device, count
from tests.cloud.ingest_write.publisher import DevicePublisher, wait_for
from tests.mosquitto import Mosquitto


def test_the_same_batch_delivered_twice_is_stored_once_and_acked_twice(
    tmp_path: Path,
    database_url: str,
    engine: Engine,
    broker: Mosquitto,
    device: Callable[[str], DevicePublisher],
) -> None:
    dev = Device("site-1")
    payload = dev.payload(dev.readings(10))
    pub = device("site-1")
    with running(consumer_settings(tmp_path, database_url, broker), engine) as consumer:
        pub.publish(payload)
        wait_for(lambda: pub.ack_count() == 1, what="the first ack")
        pub.publish(payload)
        wait_for(lambda: pub.ack_count() == 2, what="the second ack")
        assert pub.acks == [{"epoch": EPOCH, "seqs": [[1, 10]]}] * 2
        assert count(engine, "event_ids") == 10
        assert count(engine, "readings") == 20  # two quantities each
        m = consumer.metrics
        assert m.stored_events._value.get() == 10
        assert m.duplicate_events._value.get() == 10


def sample(consumer_metrics: object, name: str, **labels: str) -> float:
    from edge_cloud.ingest.consumer import IngestMetrics

    assert isinstance(consumer_metrics, IngestMetrics)
    value = consumer_metrics.registry.get_sample_value(name, labels or None)
    return value or 0.0


def test_bad_messages_are_refused_counted_quarantined_and_the_good_ones_still_stored(
    tmp_path: Path,
    database_url: str,
    engine: Engine,
    broker: Mosquitto,
    device: Callable[[str], DevicePublisher],
) -> None:
    max_bytes = 64 * 1024
    good = Device("good-1")
    liar = Device("other-device")
    pub = device("good-1")
    bomb = zlib.compress(b'{"schema":1,"device_id":"good-1","events":[' + b" " * (50 * 2**20) + b"]}", 9)
    assert len(bomb) < max_bytes < 50 * 2**20
    bad = [
        ("spoofed", liar.payload(liar.readings(3)), False),
        ("malformed", b'{"schema": 1, "device_id": "good-1", "events": [', False),
        ("malformed", b"\x78\x9c not zlib at all", True),
        ("schema", good.payload(good.readings(1)).replace(b'"schema":1', b'"schema":2'), False),
        ("oversized", b"{" + b" " * max_bytes + b"}", False),
        ("oversized", bomb, True),
    ]
    settings = consumer_settings(tmp_path, database_url, broker, max_payload_bytes=max_bytes)
    with running(settings, engine) as consumer:
        seqs = []
        for _reason, payload, compressed in bad:
            pub.publish(payload, zlib=compressed)
            events = good.readings(5)
            seqs += [e["seq"] for e in events]
            pub.publish(good.payload(events, "zlib"), zlib=True)  # the consumer keeps consuming
        wait_for(lambda: pub.acked() >= set(seqs), what="every good batch acked")
        wait_for(lambda: sample(consumer.metrics, "edge_ingest_refused_total", reason="oversized") == 2)
        m = consumer.metrics
        for reason in ("spoofed", "malformed", "schema", "oversized"):
            expected = sum(1 for r, _p, _z in bad if r == reason)
            assert sample(m, "edge_ingest_refused_total", reason=reason) == expected, reason
        assert sample(m, "edge_ingest_stored_events_total") == len(seqs)
    assert count(engine, "event_ids") == len(seqs)
    assert count(engine, "event_ids", "WHERE device_id = 'other-device'") == 0, "nothing spoofed is stored"
    assert count(engine, "devices") == 1
    import sqlalchemy as sa

    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT reason, device_id, topic, size, head FROM quarantine ORDER BY id")
        ).all()
    assert [r.reason for r in rows] == [r for r, _p, _z in bad]
    assert {r.device_id for r in rows} == {"good-1"}
    assert {r.topic for r in rows} == {"devices/good-1/events"}
    assert [r.size for r in rows] == [len(p) for _r, p, _z in bad]
    assert bytes(rows[0].head) == bad[0][1][:256]


def test_an_invalid_event_is_refused_alone_and_still_acknowledged(
    tmp_path: Path,
    database_url: str,
    engine: Engine,
    broker: Mosquitto,
    device: Callable[[str], DevicePublisher],
) -> None:
    dev = Device("site-2")
    pub = device("site-2")
    events = [
        dev.event(),
        dev.event(data={"temperature_c": "warm"}),  # not a number
        dev.event(data={"temperature_c": True}),  # a bool is not a number either
        dev.event(sensor=None),  # a reading needs a sensor
        dev.event(),
        dev.event("alarm", {"code": "sensor_test_failed", "test": "t", "sensor": "climate"}),
    ]
    events[4]["data"] = {"temperature_c": 1e400}  # JSON's overflow reads as infinity
    payload = dev.payload(events).replace(b"Infinity", b"1e400")
    with running(consumer_settings(tmp_path, database_url, broker), engine) as consumer:
        pub.publish(payload)
        wait_for(lambda: pub.ack_count() == 1)
        assert pub.acks[0]["seqs"] == [[1, 6]], "refused events are acknowledged: they never become valid"
        assert sample(consumer.metrics, "edge_ingest_refused_total", reason="invalid_event") == 4
    assert count(engine, "event_ids") == 2
    assert count(engine, "readings") == 2 and count(engine, "alarms") == 1
    assert count(engine, "quarantine", "WHERE reason = 'invalid_event'") == 4
    assert count(engine, "received_ranges") == 1


def test_retained_births_and_wills_set_online_boot_and_epoch(
    tmp_path: Path,
    database_url: str,
    engine: Engine,
    broker: Mosquitto,
    device: Callable[[str], DevicePublisher],
) -> None:
    import sqlalchemy as sa

    from edge_cloud.ingest.tables import devices

    def state() -> list[tuple[object, ...]]:
        with engine.connect() as conn:
            q = sa.select(
                devices.c.device_id,
                devices.c.online,
                devices.c.boot,
                devices.c.epoch,
                devices.c.pending_events,
            )
            return [tuple(r) for r in conn.execute(q.order_by(devices.c.device_id))]

    up, down = device("born-1"), device("gone-1")
    # Retained before the ingest ever subscribed: it learns them at subscription.
    up.status(
        {"state": "online", "ts": "2026-11-25T13:19:03.123Z", "boot": "b-1", "epoch": "e-1", "pending": 42}
    )
    down.status({"state": "offline", "boot": "b-9", "epoch": "e-9"})
    with running(consumer_settings(tmp_path, database_url, broker), engine):
        wait_for(lambda: len(state()) == 2, what="both devices known")
        assert state() == [("born-1", True, "b-1", "e-1", 42), ("gone-1", False, "b-9", "e-9", None)]
        up.status({"state": "offline", "boot": "b-1", "epoch": "e-1"})  # its will
        down.publish(b"{not json", topic="devices/gone-1/status")
        down.status({"state": "online", "ts": "2026-11-25T14:00:00.000Z", "boot": "b-10", "epoch": "e-9"})
        wait_for(
            lambda: state() == [("born-1", False, "b-1", "e-1", 42), ("gone-1", True, "b-10", "e-9", None)]
        )
        assert (
            count(engine, "quarantine", "WHERE reason = 'malformed' AND topic = 'devices/gone-1/status'") == 1
        )


def test_a_broker_taking_few_unacknowledged_publishes_gets_no_more_acks_in_flight(
    tmp_path: Path, database_url: str, engine: Engine
) -> None:
    """Mosquitto announces its max_inflight_messages as Receive Maximum and disconnects a
    client that goes over it: the consumer connects again keeping to it."""
    with Mosquitto(tmp_path / "strict", extra="max_inflight_messages 3\n") as strict:
        devices = [Device(f"many-{i}") for i in range(12)]
        publishers = [DevicePublisher(strict.port, d.device_id) for d in devices]
        try:
            with running(consumer_settings(tmp_path, database_url, strict), engine) as consumer:
                for d, pub in zip(devices, publishers, strict=True):
                    pub.client.publish(f"devices/{d.device_id}/events", d.payload(d.readings(2)), qos=1)
                for pub in publishers:
                    wait_for(lambda pub=pub: pub.acked() == {1, 2}, what="every device acked")
                assert sample(consumer.metrics, "edge_ingest_broker_connects_total") == 1
        finally:
            for pub in publishers:
                pub.close()
    assert "exceeded" not in strict.log.lower() and "protocol error" not in strict.log.lower()
