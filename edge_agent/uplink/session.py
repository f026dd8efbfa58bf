"""One session: a connection from its CONNACK to its end.

It begins by setting up what depends on the connection (the lanes from the outbox's
``next_seq``, the window narrowed to the broker's Receive Maximum, the batch byte limit to
its Maximum Packet Size, everything unconfirmed queued to go again first), publishes the
retained birth, and runs the pump and the ack timer until the connection is lost or stop
is requested.  On stop it drains: waits up to ``drain_timeout`` for what is in flight,
lets the deletions catch up, says ``offline`` itself and sends DISCONNECT (so the broker
drops the will).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from edge_agent.settings import MQTTSettings
from edge_agent.uplink.client import Connection
from edge_agent.uplink.confirmations import Confirmations
from edge_agent.uplink.deletions import Deletions
from edge_agent.uplink.errors import ConnectionLost, UplinkError
from edge_agent.uplink.outbox_api import OutboxAPI
from edge_agent.uplink.payload import BatchEncoder
from edge_agent.uplink.pump import Pump
from edge_agent.uplink.stats import UplinkStats
from edge_agent.uplink.status import now
from edge_agent.uplink.stopping import StopSignal
from edge_agent.uplink.window import Window

log = logging.getLogger("edge_agent.uplink")

StatusPayload = Callable[[Literal["online", "offline"], datetime | None], bytes]
"""The payload of a status message, with its ``ts`` (None: the will's, without one)."""


class Session:
    def __init__(
        self,
        outbox: OutboxAPI,
        settings: MQTTSettings,
        *,
        pump: Pump,
        confirmations: Confirmations,
        window: Window,
        deletions: Deletions,
        encoder: BatchEncoder,
        stats: UplinkStats,
        stop: StopSignal,
        changed: asyncio.Event,
        status_topic: str,
        status: StatusPayload,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        drain_timeout: float,
    ) -> None:
        self._outbox = outbox
        self._settings = settings
        self._pump = pump
        self._confirmations = confirmations
        self._window = window
        self._deletions = deletions
        self._encoder = encoder
        self._stats = stats
        self._stop = stop
        self._changed = changed
        self._status_topic = status_topic
        self._status = status
        self._clock = clock
        self._wall = wall_clock
        self.drain_timeout = drain_timeout
        """Seconds a stop waits for what is in flight before it says offline and disconnects."""
        self.conn: Connection | None = None
        """The connection of the current (or last) session; None before the first."""

    async def serve(self, conn: Connection) -> None:
        """Run a session on ``conn`` until it is lost, or until stop (then close it cleanly)."""
        try:
            await self._session(conn)
        except BaseException:
            # Cancelled (or a bug): drop the socket without DISCONNECT, so the broker
            # publishes our will, as for any device that vanishes.
            conn.abort("uplink task ended")
            raise

    async def _session(self, conn: Connection) -> None:
        self._begin(conn)
        try:
            birth = conn.publish(self._status_topic, self._status("online", now()), retain=True)
            birth.add_done_callback(self._status_published)
        except UplinkError:
            pass  # already closed: conn.closed tells the loop below
        pump = asyncio.create_task(self._pump.run(conn), name="uplink-pump")
        timer = asyncio.create_task(self._confirmations.watch(conn), name="uplink-ack-timer")
        stop = asyncio.create_task(self._stop.wait())
        waiters: set[asyncio.Future[Any]] = {pump, timer, stop, conn.closed}
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, timer, stop):
                task.cancel()
            results = await asyncio.gather(pump, timer, stop, return_exceptions=True)
            self._pump.close_lanes()
        for result in results[:2]:
            if isinstance(result, Exception):
                conn.abort(f"uplink failure: {result!r}")
                raise result
        if self._stop.requested and not conn.closed.done():
            await self._drain_and_close(conn)
            return
        lost = conn.closed.result()
        self._stats.connections_lost += 1
        self._stats.state = "disconnected"
        self._stats.connected_since = None
        self._stats.note_error(lost, self._wall())
        if not self._stop.requested:
            log.warning("MQTT: %s; reconnecting, events keep buffering", lost)

    def _begin(self, conn: Connection) -> None:
        self.conn = conn
        live_from = self._outbox.next_seq
        # Seqs still in flight or being deleted from earlier connections are all below this.
        skip_below = max(self._window.highest_seq(), self._deletions.highest_seq()) + 1
        self._pump.open_lanes(live_from, skip_below)
        self._encoder.limit_to(conn.maximum_packet_size)
        # Everything not confirmed on the last connection goes again, first.
        self._window.new_session(self._settings.inflight_batches, conn.receive_maximum)

    def _status_published(self, fut: asyncio.Future[None]) -> None:
        exc = None if fut.cancelled() else fut.exception()
        if exc is not None and not isinstance(exc, ConnectionLost):
            log.warning("MQTT: status message not accepted: %s", exc)

    async def _drain_and_close(self, conn: Connection) -> None:
        self._stats.state = "stopping"
        deadline = self._clock() + self.drain_timeout
        while not conn.closed.done() and any(r.future is not None for r in self._window):
            left = deadline - self._clock()
            if left <= 0:
                log.info(
                    "MQTT: stopping with %d batch(es) unacknowledged; they stay in the outbox",
                    sum(1 for r in self._window if r.future is not None),
                )
                break
            self._changed.clear()
            changed = asyncio.create_task(self._changed.wait())
            waiters: set[asyncio.Future[Any]] = {changed, conn.closed}
            await asyncio.wait(waiters, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            changed.cancel()
        await self._deletions.flush(max(0.5, deadline - self._clock()))
        if conn.closed.done():
            return
        try:
            offline = conn.publish(self._status_topic, self._status("offline", now()), retain=True)
            async with asyncio.timeout(1.0):
                await offline
        except TimeoutError:
            log.warning("MQTT: offline status not confirmed: no PUBACK within 1 s")
        except UplinkError as exc:
            log.warning("MQTT: offline status not confirmed: %s", str(exc) or type(exc).__name__)
        await conn.close(1.0)
