"""The broker goes away for a while and comes back: nothing is lost, and the order is
priority first, fresh readings on the live lane, the backlog oldest first at its rate."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edge_agent.uplink import Forwarder
from tests.mosquitto import Mosquitto
from tests.uplink.conftest import DEVICE, running, settings_for
from tests.uplink.helpers import BOOT, event, open_outbox, readings, until
from tests.uplink.ingest import IngestStandIn

BACKLOG = 600
RATE = 400.0


def test_outage_then_priority_live_and_rate_limited_backlog(tmp_path: Path, outbox_kind: str) -> None:
    # Broker persistence keeps the observer's session (and what is queued for it) across
    # the outage, so the observer sees exactly what the forwarder published, in order.
    broker = Mosquitto(tmp_path / "broker", persistence=True).start()
    observer = IngestStandIn(broker.port, ack=False, client_id="observer", persistent=True).start()
    try:

        async def main() -> tuple[Forwarder, int, int]:
            async with open_outbox(outbox_kind, tmp_path) as outbox:
                settings = settings_for(broker, batch_max_events=50, backlog_rate=RATE, inflight_batches=4)
                fwd = Forwarder(outbox, settings, device_id=DEVICE, boot=BOOT)
                async with running(fwd):
                    await outbox.append(readings(20))
                    await until(lambda: outbox.pending_count == 0 and observer.has_seqs(set(range(1, 21))))
                    before_outage = len(observer.messages)

                    await asyncio.to_thread(broker.stop)
                    await until(lambda: fwd.stats.state != "connected", what="the loss to be noticed")
                    # During the outage: readings, with alarms and test results in between.
                    for chunk in range(4):
                        await outbox.append(readings(BACKLOG // 4, 100 + chunk * 1000))
                        await outbox.append([event("alarm", chunk), event("test_result", chunk)])
                    await asyncio.sleep(0.3)
                    assert outbox.pending_count == BACKLOG + 8, "nothing leaves while the broker is down"

                    await asyncio.to_thread(broker.start)
                    await until(lambda: fwd.stats.connects == 2, what="reconnect")
                    live_from = fwd.live_from
                    assert live_from == 20 + BACKLOG + 8 + 1
                    for round_ in range(3):  # fresh readings while the backlog drains
                        await outbox.append(readings(10, 5000 + 10 * round_))
                        await asyncio.sleep(0.1)
                    last = outbox.next_seq - 1
                    await until(
                        lambda: outbox.pending_count == 0 and observer.has_seqs(set(range(1, last + 1))), 20
                    )
                return fwd, before_outage, live_from

        fwd, before_outage, live_from = asyncio.run(main())
    finally:
        observer.stop()
        broker.stop()

    after = observer.messages[before_outage:]
    seen = [e for m in after for e in m.envelopes]
    seqs = [e["seq"] for e in seen]
    assert sorted(set(seqs)) == list(range(21, live_from + 30))

    priority = [e["seq"] for e in seen if e["kind"] != "reading"]
    backlog = [e["seq"] for e in seen if e["kind"] == "reading" and e["seq"] < live_from]
    fresh = [e["seq"] for e in seen if e["seq"] >= live_from]
    # Alarms and test results first, in seq order.
    assert seqs[: len(priority)] == priority == sorted(priority) and len(priority) == 8
    # The backlog oldest first, without a gap, in batches of at most 50.  Its rate is not
    # timed here (a loaded machine delivered 0.98 s against a 1.0 s bound): the token
    # bucket's pacing is checked with a manual clock in test_parts; here, by order, the
    # fresh readings below overtake the paced backlog.
    assert backlog == sorted(backlog) and len(set(backlog)) == BACKLOG
    in_backlog = set(backlog)
    backlog_batches = [m for m in after if any(e["seq"] in in_backlog for e in m.envelopes)]
    assert len(backlog_batches) >= BACKLOG // 50
    # Fresh readings went out ahead of the backlog, not after it.
    position = {s: i for i, s in reversed(list(enumerate(seqs)))}
    assert max(position[s] for s in fresh) < position[backlog[-1]]
    assert fwd.stats.connections_lost == 1 and fwd.stats.acked_events == len(set(seqs)) + 20
