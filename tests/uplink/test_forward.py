"""Broker mode against a real Mosquitto: every event arrives, the outbox empties."""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from pathlib import Path

from edge_agent.settings import MQTTSettings
from edge_agent.uplink import Forwarder
from edge_protocol.wire import decode_batch
from tests.mosquitto import Mosquitto
from tests.uplink.conftest import DEVICE, running, settings_for
from tests.uplink.helpers import BOOT, event, last_publish, open_outbox, readings, until
from tests.uplink.ingest import IngestStandIn


def test_every_event_arrives_in_batches_and_the_outbox_empties(
    broker: Mosquitto, outbox_kind: str, tmp_path: Path
) -> None:
    with IngestStandIn(broker.port, ack=False) as observer:

        async def main() -> tuple[Forwarder, str, float | None]:
            async with open_outbox(outbox_kind, tmp_path) as outbox:
                committed = await outbox.append([*readings(250), event("alarm", 1)])
                fwd = Forwarder(
                    outbox, settings_for(broker, batch_max_events=40), device_id=DEVICE, boot=BOOT
                )
                async with running(fwd):
                    await until(lambda: outbox.pending_count == 0 and observer.has_seqs(set(range(1, 252))))
                    committed += await outbox.append(readings(10, 1000))
                    await until(lambda: outbox.pending_count == 0 and observer.has_seqs(set(range(1, 262))))
                    assert fwd.stats.state == "connected"
                assert {e.envelope["id"] for e in committed} == {e["id"] for e in observer.envelopes()}
                return fwd, outbox.epoch, await last_publish(outbox)

        fwd, epoch, published_at = asyncio.run(main())
        observer.wait_for(lambda o: any(s.get("state") == "offline" for s in o.statuses), 5)

    assert sorted(set(observer.seqs())) == list(range(1, 262))
    assert all(len(m.envelopes) <= 40 for m in observer.messages)
    # The alarm was committed last but leaves first.
    assert observer.messages[0].envelopes[0]["kind"] == "alarm"
    assert published_at is not None and published_at == fwd.stats.last_publish_at
    s = fwd.stats
    assert (s.acked_events, s.rejected_batches, s.malformed_acks) == (261, 0, 0)
    assert s.published_events >= 261 and s.published_batches >= 261 // 40
    assert s.state == "stopped" and s.connects == 1
    states = [st["state"] for st in observer.statuses]
    assert states[0] == "online" and states[-1] == "offline"
    online = observer.statuses[0]
    assert online["boot"] == BOOT and online["epoch"] == epoch and online["ts"].endswith("Z")
    # The birth reports the backlog at connect (all 251 committed before the uplink started),
    # the clean offline what is left (nothing).
    assert online["pending"] == 251 and observer.statuses[-1]["pending"] == 0


def test_zlib_payload_carries_the_content_encoding_property(
    broker: Mosquitto, outbox_kind: str, tmp_path: Path
) -> None:
    with IngestStandIn(broker.port, ack=False) as observer:

        async def main() -> None:
            async with open_outbox(outbox_kind, tmp_path) as outbox:
                await outbox.append(readings(120))
                fwd = Forwarder(outbox, settings_for(broker, compression="zlib"), device_id=DEVICE, boot=BOOT)
                async with running(fwd):
                    await until(lambda: outbox.pending_count == 0 and observer.has_seqs(set(range(1, 121))))

        asyncio.run(main())

    assert not observer.errors
    assert {m.content_encoding for m in observer.messages} == {"zlib"}
    assert sorted(set(observer.seqs())) == list(range(1, 121))
    # The payload on the wire is zlib, and the batch inside is the plain JSON batch.
    first = observer.messages[0]
    plain = zlib.decompress(first.payload)
    assert json.loads(plain)["schema"] == 1
    assert decode_batch(plain).events[0].seq == first.envelopes[0]["seq"]
    assert len(first.payload) < len(plain) / 2


def test_stop_while_the_broker_is_unreachable_is_prompt_and_keeps_everything(tmp_path: Path) -> None:
    from tests.mosquitto import free_port

    async def main() -> tuple[Forwarder, float, int]:
        async with open_outbox("sqlite", tmp_path) as outbox:
            await outbox.append(readings(5))
            settings = MQTTSettings(host="127.0.0.1", port=free_port(), reconnect_min=0.5, reconnect_max=5.0)
            fwd = Forwarder(outbox, settings, device_id=DEVICE, boot=BOOT)
            task = asyncio.create_task(fwd.run())
            await until(lambda: fwd.stats.connect_failures >= 2)
            started = time.monotonic()
            await fwd.stop()
            await task
            return fwd, time.monotonic() - started, outbox.pending_count

    fwd, stop_took, pending = asyncio.run(main())
    assert stop_took < 1.0 and pending == 5
    assert fwd.stats.state == "stopped" and fwd.stats.connects == 0
    assert fwd.stats.last_error is not None and "cannot reach" in fwd.stats.last_error


def test_a_small_broker_receive_maximum_narrows_the_window(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker", extra="max_inflight_messages 3\n").start()
    try:
        with IngestStandIn(broker.port, ack=False) as observer:

            async def main() -> int:
                async with open_outbox("memory", tmp_path) as outbox:
                    await outbox.append(readings(300))
                    settings = settings_for(broker, batch_max_events=10, inflight_batches=8)
                    fwd = Forwarder(outbox, settings, device_id=DEVICE, boot=BOOT)
                    widest = 0
                    async with running(fwd):
                        while outbox.pending_count:
                            widest = max(widest, fwd.stats.inflight_batches)
                            await asyncio.sleep(0)
                        await until(lambda: observer.has_seqs(set(range(1, 301))))
                    return widest

            widest = asyncio.run(main())
    finally:
        broker.stop()
    assert 1 <= widest <= 1, "Receive Maximum 3 leaves one batch (two kept for status messages)"


def test_a_device_that_vanishes_is_announced_offline_by_its_will(broker: Mosquitto, tmp_path: Path) -> None:
    with IngestStandIn(broker.port, ack=False) as observer:

        async def main() -> None:
            async with open_outbox("memory", tmp_path) as outbox:
                fwd = Forwarder(outbox, settings_for(broker), device_id=DEVICE, boot=BOOT)
                task = asyncio.create_task(fwd.run())
                await until(lambda: fwd.stats.state == "connected")
                await until(lambda: any(s["state"] == "online" for s in observer.statuses))
                task.cancel()  # no stop(): the process just ends
                await asyncio.gather(task, return_exceptions=True)

        asyncio.run(main())
        assert observer.wait_for(lambda o: o.statuses[-1]["state"] == "offline", 5)
    will = observer.statuses[-1]
    assert will == {"state": "offline", "boot": BOOT, "epoch": will["epoch"]}, "the will has no ts"


def test_readings_one_at_a_time_cost_no_priority_or_backlog_query(
    broker: Mosquitto, outbox_kind: str, tmp_path: Path
) -> None:
    """A device at 1 Hz commits one reading at a time: each must cost a query of the live
    lane only (the priority lane looks again when priority events are committed, the
    backlog never once found empty), and an alarm among them still leaves first."""
    fetches: list[str] = []
    with IngestStandIn(broker.port, ack=False) as observer:

        async def main() -> None:
            async with open_outbox(outbox_kind, tmp_path) as outbox:
                real_fetch = outbox.fetch

                async def counting_fetch(lane, **kw):  # type: ignore[no-untyped-def]
                    fetches.append(lane if kw.get("before_seq") is None else "backlog")
                    return await real_fetch(lane, **kw)

                outbox.fetch = counting_fetch
                await outbox.append(readings(3))  # a backlog at connect
                fwd = Forwarder(outbox, settings_for(broker), device_id=DEVICE, boot=BOOT)
                async with running(fwd):
                    await until(lambda: outbox.pending_count == 0 and observer.has_seqs({1, 2, 3}))
                    fetches.clear()
                    for i in range(10):
                        await outbox.append(readings(1, 100 + i))
                        await until(lambda i=i: observer.has_seqs(set(range(4, 5 + i))))  # type: ignore[misc]
                    await outbox.append([event("alarm", 1)])
                    await until(lambda: observer.has_seqs({14}))

        asyncio.run(main())

    assert fetches.count("backlog") == 0
    assert fetches.count("priority") <= 2, fetches  # the alarm's commit (and the idle recheck)
    assert fetches.count("readings") >= 10
