"""An eviction while the uplink is sending: no seq both arrives and is announced evicted.

The real SQLite outbox and the real forwarder, on a connection whose PUBACKs the test
gives (no broker: the moment of each PUBACK is the point).  The backlog drains after an
outage; the window is full (two batches published, no PUBACK yet) and the lane reader has
read the rest of the backlog ahead; then the size cap evicts the oldest readings.  Before
claims (``Outbox.claim``) this evicted the batches in flight, which arrived anyway, and
the reader's read-ahead, which was published after the gap event had announced it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from edge_agent.outbox import Outbox
from edge_agent.settings import MQTTSettings
from edge_agent.uplink import Forwarder
from edge_agent.uplink.client import MessageHandler
from edge_agent.uplink.errors import ConnectionLost
from edge_agent.uplink.params import ConnectParams
from edge_protocol.wire import decode_batch
from tests.uplink.conftest import running
from tests.uplink.helpers import BOOT, readings, until

DEVICE = "dev-1"
CAP = 64 * 1024
BATCH = 10
WINDOW = 2


class HeldPubacks:
    """The uplink's view of one connection; batches wait for the PUBACK the test gives.

    Retained messages (the status) are acknowledged at once.
    """

    session_present = False
    receive_maximum: int | None = None
    maximum_packet_size: int | None = None

    def __init__(self) -> None:
        self.closed: asyncio.Future[ConnectionLost] = asyncio.get_running_loop().create_future()
        self.batches: list[list[dict[str, Any]]] = []
        self._held: list[asyncio.Future[None]] = []
        self.auto = False
        """PUBACK every batch as it is published."""

    async def opener(self, params: ConnectParams, on_message: MessageHandler) -> HeldPubacks:
        return self

    @property
    def is_open(self) -> bool:
        return not self.closed.done()

    def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False, properties: Any = None
    ) -> asyncio.Future[None]:
        if self.closed.done():
            raise ConnectionLost(self.closed.result().reason)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if retain:
            fut.set_result(None)
            return fut
        self.batches.append([e.model_dump(mode="json", by_alias=True) for e in decode_batch(payload).events])
        if self.auto:
            fut.set_result(None)
        else:
            self._held.append(fut)
        return fut

    def puback_all(self) -> None:
        self.auto = True
        for fut in self._held:
            if not fut.done():
                fut.set_result(None)
        self._held.clear()

    def abort(self, reason: str) -> None:
        if not self.closed.done():
            self.closed.set_result(ConnectionLost(reason))

    async def close(self, timeout: float = 2.0) -> None:
        self.abort("closed")


def test_what_is_in_flight_or_read_ahead_is_never_evicted_and_delivered(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await Outbox.open(tmp_path / "outbox.db", max_bytes=CAP, max_age_s=1e9, boot=BOOT)
        # The backlog of an outage, below the cap.
        backlog = await outbox.append(readings(200))
        assert outbox.pending_bytes < CAP
        conn = HeldPubacks()
        settings = MQTTSettings(
            host="127.0.0.1", batch_max_events=BATCH, inflight_batches=WINDOW, reconnect_min=0.05
        )
        forwarder = Forwarder(outbox, settings, device_id=DEVICE, opener=conn.opener)  # type: ignore[arg-type]
        try:
            async with running(forwarder):
                # Seqs 1-20 in flight, 21-200 read ahead by the backlog's lane reader.
                await until(lambda: len(conn.batches) == WINDOW, what="a full window")
                in_flight = {e["seq"] for batch in conn.batches for e in batch}
                assert in_flight == set(range(1, BATCH * WINDOW + 1))
                # Sampling goes on: over the size cap, the oldest readings go.
                await outbox.append(readings(150, 200))
                evicted = outbox.evicted["size_cap"]
                assert evicted > 2 * len(in_flight), "the eviction must reach past the window"
                conn.puback_all()
                await until(lambda: outbox.pending_count == 0, what="the outbox to drain")
        finally:
            await outbox.close()

        delivered = [e for batch in conn.batches for e in batch]
        seen = {e["seq"] for e in delivered}
        announced = {
            s
            for e in delivered
            if e["kind"] == "gap"
            for first, last in e["data"]["evicted"]
            for s in range(first, last + 1)
        }
        both = sorted(seen & announced)
        assert not both, f"evicted and delivered: {len(both)} seqs, {both[:3]} … {both[-3:]}"
        assert seen | announced == set(range(1, outbox.next_seq))
        # What was in flight arrived; the next oldest readings were evicted in its place.
        assert in_flight <= seen
        first_evicted = BATCH * WINDOW + 1
        assert sorted(announced) == list(range(first_evicted, first_evicted + evicted))
        assert backlog[-1].seq in seen

    asyncio.run(main())
