"""The consumer's pipeline with a store that fails: nothing is PUBACKed or acknowledged
before its commit; a database that is down holds the messages; one message the database
refuses is quarantined alone and the others stored."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from edge_cloud.ingest.consumer import IngestMetrics
from edge_cloud.ingest.consumer.pipeline import Pipeline
from edge_cloud.ingest.consumer.session import Received
from edge_cloud.ingest.errors import StoreRejected, StoreUnavailable
from edge_cloud.ingest.settings import ConsumerSettings
from edge_cloud.ingest.store import DeviceAck, Outcome, Work
from tests.cloud.ingest_write.helpers import Device
from tests.cloud.ingest_write.publisher import wait_for


class FakeSession:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def ack(self, mid: int, qos: int) -> None:
        self.log.append(f"puback {mid}")


class FakeStore:
    """Fails ``unavailable`` times, then refuses any work holding ``poison``'s device."""

    def __init__(self, log: list[str], *, unavailable: int = 0, poison: str | None = None) -> None:
        self.log = log
        self.unavailable = unavailable
        self.poison = poison
        self.works: list[Work] = []

    def write(self, work: Work) -> Outcome:
        if self.unavailable:
            self.unavailable -= 1
            self.log.append("unavailable")
            raise StoreUnavailable("connection refused")
        if self.poison and any(m.device_id == self.poison for m in work.events):
            self.log.append("rejected")
            raise StoreRejected("value out of range")
        self.works.append(work)
        self.log.append(f"commit {work.event_count} events, {len(work.refusals)} refusals")
        acks = tuple(DeviceAck(m.device_id, "e", ((1, len(m.events)),)) for m in work.events)
        return Outcome(work.event_count, 0, (), acks)


class FakeAcks:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def publish_acks(self, acks: Sequence[DeviceAck]) -> int:
        self.log += [f"ack {a.device_id}" for a in acks]
        return len(acks)


def received(session: Any, device: Device, mid: int) -> Received:
    payload = device.payload(device.readings(3))
    now = time.time()
    return Received(
        session, f"devices/{device.device_id}/events", payload, 1, mid, False, None, now, time.monotonic()
    )


def run(store: FakeStore, log: list[str], devices: list[Device]) -> Pipeline:
    pipeline = Pipeline(store, FakeAcks(log), IngestMetrics(), ConsumerSettings(batch_max_wait=0.2))  # type: ignore[arg-type]
    pipeline.start()
    session = FakeSession(log)
    for mid, d in enumerate(devices, 1):
        pipeline.put(received(session, d, mid))
    return pipeline


def test_nothing_is_acknowledged_before_the_commit_and_a_down_database_holds_the_messages() -> None:
    log: list[str] = []
    store = FakeStore(log, unavailable=3)
    pipeline = run(store, log, [Device("a"), Device("b")])
    try:
        wait_for(lambda: "puback 2" in log, 30, "the commit and its acknowledgements")
    finally:
        assert pipeline.stop(5)
    assert log == ["unavailable"] * 3 + [
        "commit 6 events, 0 refusals",
        "ack a",
        "ack b",
        "puback 1",
        "puback 2",
    ]
    assert (
        pipeline.metrics.registry.get_sample_value(
            "edge_ingest_store_failures_total", {"kind": "unavailable"}
        )
        == 3
    )
    assert pipeline.metrics.registry.get_sample_value("edge_ingest_pending_messages") == 0


def test_a_message_the_database_refuses_is_quarantined_alone() -> None:
    log: list[str] = []
    store = FakeStore(log, poison="bad")
    pipeline = run(store, log, [Device("a"), Device("bad"), Device("c")])
    try:
        wait_for(lambda: "puback 3" in log, 30, "all three acknowledged")
    finally:
        assert pipeline.stop(5)
    assert log[0] == "rejected"
    assert [w.events[0].device_id for w in store.works if w.events] == ["a", "c"]
    (quarantined,) = [r for w in store.works for r in w.refusals]
    assert (quarantined.reason, quarantined.device_id, quarantined.events) == ("unstorable", "bad", 3)
    assert {"ack a", "ack c"} <= set(log) and "ack bad" not in log
    assert (
        pipeline.metrics.registry.get_sample_value("edge_ingest_refused_total", {"reason": "unstorable"}) == 1
    )


def test_stopping_while_the_database_is_down_leaves_the_messages_unacknowledged() -> None:
    log: list[str] = []
    store = FakeStore(log, unavailable=10_000)
    pipeline = run(store, log, [Device("a")])
    wait_for(lambda: log.count("unavailable") >= 2, 30, "retries")
    assert pipeline.stop(0.5) is False
    assert not any(entry.startswith(("puback", "ack")) for entry in log)
