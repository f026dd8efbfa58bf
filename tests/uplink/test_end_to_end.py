"""End-to-end delivery: events leave the outbox only when the ingest says it stored them."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import paho.mqtt.publish as publish
from paho.mqtt.client import MQTTv5

from edge_agent.uplink import Forwarder
from edge_protocol.wire import acks_topic
from tests.mosquitto import Mosquitto
from tests.uplink.conftest import DEVICE, running, settings_for
from tests.uplink.helpers import BOOT, last_publish, open_outbox, readings, until
from tests.uplink.ingest import IngestStandIn


def send_ack(broker: Mosquitto, payload: bytes | str) -> None:
    publish.single(
        acks_topic(DEVICE), payload, qos=1, hostname="127.0.0.1", port=broker.port, protocol=MQTTv5
    )


def test_broker_restart_without_persistence_loses_nothing(tmp_path: Path, outbox_kind: str) -> None:
    broker = Mosquitto(tmp_path / "broker", persistence=False).start()
    ingest = IngestStandIn(broker.port, ack=True).start()
    try:

        async def main() -> tuple[Forwarder, list[str]]:
            async with open_outbox(outbox_kind, tmp_path) as outbox:
                settings = settings_for(
                    broker, delivery="end-to-end", ack_timeout=1.0, batch_max_events=20, inflight_batches=4
                )
                fwd = Forwarder(outbox, settings, device_id=DEVICE, boot=BOOT)
                async with running(fwd):
                    ids = [e.envelope["id"] for e in await outbox.append(readings(100))]
                    await until(lambda: outbox.pending_count == 0, what="the first 100 to be acknowledged")
                    # The ingest stores but does not get to acknowledge: batches stay in flight.
                    ingest.ack = False
                    ids += [e.envelope["id"] for e in await outbox.append(readings(100, 100))]
                    await until(
                        lambda: fwd.stats.inflight_batches == 4 and ingest.has_seqs(set(range(101, 181)))
                    )
                    assert fwd.stats.resent_events == 0 and outbox.pending_count == 100
                    # The broker dies and comes back empty: no session, no queued message.
                    await asyncio.to_thread(broker.restart, kill=True)
                    ingest.ack = True
                    ids += [e.envelope["id"] for e in await outbox.append(readings(20, 200))]
                    await until(lambda: outbox.pending_count == 0 and ingest.has_seqs(set(range(1, 221))), 20)
                return fwd, ids

        fwd, ids = asyncio.run(main())
    finally:
        ingest.stop()
        broker.stop()

    seen = Counter(e["id"] for e in ingest.envelopes())
    assert set(seen) == set(ids), "nothing lost, nothing invented"
    # What was in flight went out again: duplicates on the wire, with the same ids.
    assert fwd.stats.resent_events >= 80
    assert sum(1 for i in ids[100:180] if seen[i] >= 2) == 80
    assert fwd.stats.connections_lost == 1


def test_unacknowledged_events_stay_and_are_sent_again(
    broker: Mosquitto, outbox_kind: str, tmp_path: Path
) -> None:
    with IngestStandIn(broker.port, ack=False) as ingest:

        async def main() -> tuple[Forwarder, list[str], float | None]:
            async with open_outbox(outbox_kind, tmp_path) as outbox:
                settings = settings_for(broker, delivery="end-to-end", ack_timeout=0.5, batch_max_events=10)
                fwd = Forwarder(outbox, settings, device_id=DEVICE, boot=BOOT)
                async with running(fwd):
                    ids = [e.envelope["id"] for e in await outbox.append(readings(30))]
                    await until(lambda: fwd.stats.resent_events >= 30, what="resends after ack_timeout")
                    assert outbox.pending_count == 30 and fwd.stats.acked_events == 0
                    assert fwd.stats.published_events >= 60 and fwd.stats.state == "connected"
                    # An ack for another epoch (an older outbox) deletes nothing.
                    other = json.dumps({"epoch": "other", "seqs": [[1, 1000]]})
                    await asyncio.to_thread(send_ack, broker, other)
                    await until(lambda: fwd.stats.foreign_epoch_acks == 1)
                    assert outbox.pending_count == 30
                    ingest.ack = True
                    await until(lambda: outbox.pending_count == 0, what="acks once the ingest answers")
                return fwd, ids, await last_publish(outbox)

        fwd, ids, published_at = asyncio.run(main())

    seen = Counter(e["id"] for e in ingest.envelopes())
    assert set(seen) == set(ids) and min(seen.values()) >= 2
    assert fwd.stats.acked_events == 30 and fwd.stats.resent_batches >= 3
    assert published_at is not None


def test_malformed_acks_are_counted_and_dropped(broker: Mosquitto, tmp_path: Path) -> None:
    junk: list[bytes] = [
        b"not json",
        b"{}",
        b"[]",
        b"\xff\xfe\x00",
        b'{"epoch": "e", "seqs": "all"}',
        b'{"epoch": "e", "seqs": [[5, 2]]}',
        b'{"epoch": "e", "seqs": [[1, 2, 3]]}',
        b'{"epoch": "e", "seqs": [[1, 2]], "extra": 1}',
    ]
    with IngestStandIn(broker.port, ack=True) as ingest:

        async def main() -> Forwarder:
            async with open_outbox("sqlite", tmp_path) as outbox:
                fwd = Forwarder(
                    outbox, settings_for(broker, delivery="end-to-end"), device_id=DEVICE, boot=BOOT
                )
                async with running(fwd):
                    await until(lambda: fwd.stats.state == "connected")
                    for payload in junk:
                        await asyncio.to_thread(
                            send_ack, broker, payload.replace(b'"e"', b'"%s"' % outbox.epoch.encode())
                        )
                    await until(lambda: fwd.stats.malformed_acks == len(junk), what="malformed acks counted")
                    await outbox.append(readings(50))
                    await until(lambda: outbox.pending_count == 0 and ingest.has_seqs(set(range(1, 51))))
                    assert fwd.stats.state == "connected"
                return fwd

        fwd = asyncio.run(main())

    assert fwd.stats.malformed_acks == len(junk)
    assert fwd.stats.acked_events == 50 and fwd.stats.connections_lost == 0
