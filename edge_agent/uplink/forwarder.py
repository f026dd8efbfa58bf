"""The uplink's forwarder: outbox → batches → MQTT, deleting only what is acknowledged.

One long-running task (:meth:`Forwarder.run`) that, for as long as the daemon lives:

- connects (:class:`~edge_agent.uplink.client.Connection`), retrying with exponential
  backoff and full jitter (tenacity), logging a failure once per series;
- publishes a retained birth message (the will says ``offline``);
- reads the outbox lane by lane (:mod:`edge_agent.uplink.lanes`: priority, live, backlog
  at ``backlog_rate``), cuts batches of at most ``batch_max_events``/``batch_max_bytes``
  and publishes them at QoS 1 with up to ``inflight_batches`` unacknowledged at once — never
  one PUBACK at a time, which stalls on Nagle, and never more than paho's 16-bit message
  ids can tell apart;
- deletes events from the outbox once acknowledged: on a successful PUBACK in ``broker``
  mode, on the ingest's ack (``devices/{id}/acks``) in ``end-to-end`` mode.  A PUBACK
  with a failure reason code is not a success: the batch is kept and sent again after a
  backoff.  In end-to-end mode a batch not confirmed within ``ack_timeout`` is sent again;
- after a reconnect, sends again everything that was in flight (duplicates are allowed,
  the cloud removes them by event id; gaps never are).

:class:`Forwarder` is the API and wires its parts, one job each:

- :mod:`.connecting` — :class:`~.connecting.Connector`: a connection with its
  subscriptions, retried with backoff until stop;
- :mod:`.session` — :class:`~.session.Session`: one connection from its CONNACK to its
  end (birth, the pump and the ack timer, then a lost connection or a drained stop);
- :mod:`.pump` — :class:`~.pump.Pump`: one session's lanes, and the loop that chooses,
  cuts and publishes batches;
- :mod:`.window` — :class:`~.window.InFlight` (a batch from the moment it is cut until all
  its seqs are confirmed) and :class:`~.window.Window` (those records, the seqs in them,
  the resend queue);
- :mod:`.confirmations` — PUBACK outcomes, the ingest's acks, the ack timer;
- :mod:`.deletions` — confirmed seqs deleted by a separate task, so the outbox sees one
  transaction per burst of acknowledgements, not per batch;
- :mod:`.payload` — a batch's topic, properties and payload bytes;
- :mod:`.command_channel` — the subscription to remote commands and their replies;
- :mod:`.stopping` — the stop request every part reads.

The forwarder itself connects, serves a session, and after a lost connection waits a
jittered moment and connects again, until stop; and it routes what arrives: commands to
:attr:`Forwarder.commands`, acks to the confirmations.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime
from typing import Literal

from edge_agent.events import StoredEvent
from edge_agent.settings import MQTTSettings
from edge_agent.uplink.backoff import FullJitter
from edge_agent.uplink.client import Connection, Message
from edge_agent.uplink.command_channel import CommandRouter, send_reply, subscribe_commands
from edge_agent.uplink.confirmations import Confirmations
from edge_agent.uplink.connecting import Connector, Opener, open_connection
from edge_agent.uplink.deletions import Deletions
from edge_agent.uplink.errors import ConnectionLost
from edge_agent.uplink.outbox_api import OutboxAPI
from edge_agent.uplink.params import ConnectParams, Will
from edge_agent.uplink.payload import BatchEncoder
from edge_agent.uplink.problems import ProblemSeries
from edge_agent.uplink.pump import Pump
from edge_agent.uplink.session import Session
from edge_agent.uplink.stats import UplinkStats
from edge_agent.uplink.status import status_payload
from edge_agent.uplink.stopping import Stopped, StopSignal
from edge_agent.uplink.window import InFlight, Window
from edge_protocol.wire import acks_topic, boot_id, status_topic

log = logging.getLogger("edge_agent.uplink")

# Names that lived here before the split into parts stay importable from here.
__all__ = ["CommandRouter", "Forwarder", "InFlight", "Opener", "open_connection"]


class Forwarder:
    """Forwards the outbox to the broker until :meth:`stop`; see the module docstring."""

    def __init__(
        self,
        outbox: OutboxAPI,
        settings: MQTTSettings,
        *,
        device_id: str,
        boot: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        opener: Opener = open_connection,
        drain_timeout: float = 3.0,
        commands: CommandRouter | None = None,
    ) -> None:
        self._outbox = outbox
        self.settings = settings
        self.device_id = device_id
        self.boot = boot or boot_id()
        self._clock = clock
        self._wall = wall_clock
        self.commands = commands
        """Remote commands: subscribed on every connect, their messages routed here."""
        self._e2e = settings.delivery == "end-to-end"
        self._encoder = BatchEncoder(settings, device_id)
        self._acks_topic = acks_topic(device_id)
        self._status_topic = status_topic(device_id)
        self._backoff = FullJitter(settings.reconnect_min, settings.reconnect_max, rng)
        self.stats = UplinkStats(delivery=settings.delivery)
        self.latency_observers: list[Callable[[float], None]] = []
        """Called with each batch's seconds from its first publish to its confirmation (metrics)."""

        self._stop = StopSignal()
        self._finished = asyncio.Event()
        self._changed = asyncio.Event()
        """Set when the window, its resend queue or the stop request changes: look again."""
        self._running = False

        # The parts share the stats, the stop request, `_changed` and the outbox's problem
        # series (the pump and the deletions both report a failing outbox).
        self._outbox_problem = ProblemSeries(log, "MQTT uplink: outbox operation failed")
        self._window = Window(settings.inflight_batches)
        self._deletions = Deletions(outbox, self.stats, self._outbox_problem, wall_clock=wall_clock)
        self._confirmations = Confirmations(
            settings,
            end_to_end=self._e2e,
            outbox=outbox,
            window=self._window,
            deletions=self._deletions,
            stats=self.stats,
            backoff=self._backoff,
            changed=self._changed,
            clock=clock,
            wall_clock=wall_clock,
            batch_confirmed=self._observe_latency,
        )
        self._pump = Pump(
            outbox,
            settings,
            window=self._window,
            encoder=self._encoder,
            stats=self.stats,
            changed=self._changed,
            stop=self._stop,
            outbox_problem=self._outbox_problem,
            clock=clock,
            skip=self._skip,
            on_puback=self._confirmations.on_puback,
        )
        self._session = Session(
            outbox,
            settings,
            pump=self._pump,
            confirmations=self._confirmations,
            window=self._window,
            deletions=self._deletions,
            encoder=self._encoder,
            stats=self.stats,
            stop=self._stop,
            changed=self._changed,
            status_topic=self._status_topic,
            status=self._status,
            clock=clock,
            wall_clock=wall_clock,
            drain_timeout=drain_timeout,
        )
        self._connector = Connector(
            settings,
            opener=opener,
            params=self._params,
            on_message=self._on_message,
            subscribe=self._subscribe,
            stats=self.stats,
            backoff=self._backoff,
            stop=self._stop,
            wall_clock=wall_clock,
        )

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def live_from(self) -> int | None:
        """First seq of the live lane of the current session (None before the first connect)."""
        return self._pump.live_from

    async def run(self) -> None:
        """Forward until :meth:`stop`.  Never returns early on broker or network trouble."""
        if self._running:
            raise RuntimeError("Forwarder.run() is already running")
        self._running = True
        self._finished.clear()
        deleter = asyncio.create_task(self._deletions.run(), name="uplink-deleter")
        try:
            lost = False
            while not self._stop.requested:
                if lost:
                    # A broker restart drops a whole fleet at once: do not all knock at once.
                    try:
                        await self._stop.sleep(self._backoff.first_delay())
                    except Stopped:
                        break
                conn = await self._connector.connect()
                if conn is None:
                    break
                await self._session.serve(conn)
                lost = True
        finally:
            await self._deletions.flush(1.0)
            deleter.cancel()
            await asyncio.gather(deleter, return_exceptions=True)
            self.stats.state = "stopped"
            self.stats.inflight_batches = 0
            self._running = False
            self._finished.set()

    async def stop(self, timeout: float | None = None) -> None:
        """Stop taking batches, wait briefly for acknowledgements, say offline, disconnect."""
        self._stop.set()
        self._changed.set()
        if not self._running:
            return
        limit = timeout if timeout is not None else self._session.drain_timeout + 4.0
        try:
            async with asyncio.timeout(limit):
                await self._finished.wait()
        except TimeoutError:
            log.warning("MQTT uplink did not stop within %.0f s", limit)

    @property
    def connection(self) -> Connection | None:
        """The open connection, for messages that are not the record (the latest-value
        view, Home Assistant discovery); None while disconnected."""
        conn = self._session.conn
        return conn if conn is not None and conn.is_open else None

    def publish_reply(self, topic: str, payload: bytes, correlation: bytes | None) -> None:
        """Publish a command reply (QoS 1, not stored) now; raises when not connected."""
        conn = self._session.conn
        if conn is None or not conn.is_open:
            raise ConnectionLost("not connected")
        send_reply(conn, topic, payload, correlation)

    # -- what the parts ask of the forwarder ----------------------------------------------

    def _status(self, state: Literal["online", "offline"], ts: datetime | None) -> bytes:
        # The backlog as of now goes with a birth or a clean offline, never with the will.
        pending = self._outbox.pending_count if ts is not None else None
        return status_payload(state, boot=self.boot, epoch=self._outbox.epoch, ts=ts, pending=pending)

    def _params(self) -> ConnectParams:
        will = Will(self._status_topic, self._status("offline", None))
        max_inflight = min(100, max(20, 2 * self.settings.inflight_batches + 4))
        return ConnectParams.from_settings(
            self.settings, device_id=self.device_id, will=will, max_inflight=max_inflight
        )

    async def _subscribe(self, conn: Connection) -> None:
        """The subscriptions of every connection: acks (end-to-end), then remote commands."""
        if self._e2e:
            await conn.subscribe(self._acks_topic, qos=1)
        if self.commands is not None:
            await subscribe_commands(conn, self.commands.topic_filter)

    def _on_message(self, message: Message) -> None:
        if self.commands is not None and self.commands.matches(message.topic):
            self.commands.receive(message)
            return
        if message.topic != self._acks_topic:
            return
        self._confirmations.on_ack(message.payload)

    def _skip(self, seq: int) -> bool:
        return self._window.holds(seq) or self._deletions.holds(seq)

    def _observe_latency(self, rec: InFlight) -> None:
        for observe in self.latency_observers:
            observe(self._clock() - rec.first_published_at)

    def _payload(self, events: list[StoredEvent]) -> bytes:
        """The batch payload of ``events`` (:meth:`BatchEncoder.payload`)."""
        return self._encoder.payload(events)
