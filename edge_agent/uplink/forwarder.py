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

Every batch lives in an :class:`InFlight` record from the moment it is cut until all its
seqs are confirmed; the records are the window.  Deletions are coalesced by a separate
task, so the outbox sees one transaction per burst of acknowledgements, not per batch.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from edge_agent.errors import EdgeAgentError
from edge_agent.events import StoredEvent
from edge_agent.settings import MQTTSettings
from edge_agent.uplink.acks import parse_ack
from edge_agent.uplink.backoff import FullJitter
from edge_agent.uplink.client import Connection, ConnectParams, Message, MessageHandler, Will
from edge_agent.uplink.errors import (
    BrokerUnreachable,
    ConnectFailed,
    ConnectionLost,
    PublishRejected,
    PublishTimeout,
    SubscribeRejected,
    UplinkError,
)
from edge_agent.uplink.lanes import LaneName, LaneReader, TokenBucket
from edge_agent.uplink.outbox_api import OutboxAPI
from edge_agent.uplink.problems import ProblemSeries
from edge_agent.uplink.stats import UplinkStats
from edge_agent.uplink.status import now, status_payload
from edge_protocol.wire import (
    CONTENT_ENCODING_PROPERTY,
    ZLIB,
    acks_topic,
    boot_id,
    encode_batch,
    events_topic,
    status_topic,
)

log = logging.getLogger("edge_agent.uplink")

OUTBOX_ERRORS = (sqlite3.Error, OSError, EdgeAgentError)
"""What a failing outbox raises (disk full, I/O error): logged and retried, never fatal."""
IDLE_RECHECK = 1.0
"""Seconds an idle forwarder waits before looking at the outbox again regardless."""
PACKET_OVERHEAD = 128
"""Fixed header, topic and properties around a payload, generously."""

Opener = Callable[[ConnectParams, MessageHandler], Awaitable[Connection]]


async def open_connection(params: ConnectParams, on_message: MessageHandler) -> Connection:
    return await Connection.open(params, on_message=on_message)


class CommandRouter(Protocol):
    """Takes the messages of the device's commands topic (:mod:`edge_agent.remote`)."""

    topic_filter: str

    def matches(self, topic: str) -> bool: ...

    def receive(self, message: Message) -> None: ...


@dataclass(eq=False)
class InFlight:
    """One batch from the moment it is cut until every seq in it is confirmed."""

    events: list[StoredEvent]
    lane: LaneName
    pending: set[int] = field(default_factory=set)
    """Seqs not confirmed yet."""
    future: asyncio.Future[None] | None = None
    """The PUBACK of the current send; None while the batch waits to be (re)sent."""
    pubacked: bool = False
    published_at: float = 0.0
    first_published_at: float = 0.0
    pubacked_at: float = 0.0
    sends: int = 0
    done: bool = False

    def __post_init__(self) -> None:
        self.pending = {e.seq for e in self.events}


class _Stopped(Exception):
    """Raised inside the connect loop when stop() interrupts a backoff wait."""


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
        self._open = opener
        self._drain_timeout = drain_timeout
        self.commands = commands
        """Remote commands: subscribed on every connect, their messages routed here."""
        self._conn: Connection | None = None
        self._e2e = settings.delivery == "end-to-end"
        self._events_topic = events_topic(device_id)
        self._acks_topic = acks_topic(device_id)
        self._status_topic = status_topic(device_id)
        self._compression = settings.compression
        self._properties: Properties | None = None
        if settings.compression == ZLIB:
            self._properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            self._properties.UserProperty = (CONTENT_ENCODING_PROPERTY, ZLIB)
        empty = encode_batch(device_id, []).decode()
        self._overhead = len(empty.encode())
        self._batch_head = empty.removesuffix("]}")
        self._backoff = FullJitter(settings.reconnect_min, settings.reconnect_max, rng)
        self.stats = UplinkStats(delivery=settings.delivery)
        self.latency_observers: list[Callable[[float], None]] = []
        """Called with each batch's seconds from its first publish to its confirmation (metrics)."""

        self._stop_event = asyncio.Event()
        self._finished = asyncio.Event()
        self._changed = asyncio.Event()
        self._running = False
        self._stopping = False

        # The window: batches cut and not yet confirmed, and the seqs in them.
        self._inflight: dict[InFlight, None] = {}
        self._by_seq: dict[int, InFlight] = {}
        self._resend: deque[InFlight] = deque()
        self._window = settings.inflight_batches
        self._max_bytes = settings.batch_max_bytes
        self._pause_until = 0.0
        self._rejections = 0

        # Confirmed seqs waiting for (or in) an outbox delete.
        self._confirmed: list[int] = []
        self._deleting: set[int] = set()
        self._delete_needed = asyncio.Event()
        self._deletes_idle = asyncio.Event()
        self._deletes_idle.set()
        self._last_confirm_wall = 0.0

        self._priority: LaneReader | None = None
        self._live: LaneReader | None = None
        self._backlog: LaneReader | None = None
        self._bucket: TokenBucket | None = None
        self._live_from: int | None = None

        self._connect_problem = ProblemSeries(log, "MQTT: cannot connect")
        self._publish_problem = ProblemSeries(log, "MQTT: publish rejected")
        self._ack_problem = ProblemSeries(log, "MQTT: malformed ack dropped")
        self._ingest_problem = ProblemSeries(log, "MQTT: ingest acknowledgement overdue")
        self._outbox_problem = ProblemSeries(log, "MQTT uplink: outbox operation failed")

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def live_from(self) -> int | None:
        """First seq of the live lane of the current session (None before the first connect)."""
        return self._live_from

    async def run(self) -> None:
        """Forward until :meth:`stop`.  Never returns early on broker or network trouble."""
        if self._running:
            raise RuntimeError("Forwarder.run() is already running")
        self._running = True
        self._finished.clear()
        deleter = asyncio.create_task(self._deleter(), name="uplink-deleter")
        try:
            lost = False
            while not self._stopping:
                if lost:
                    # A broker restart drops a whole fleet at once: do not all knock at once.
                    try:
                        await self._sleep_unless_stopped(self._backoff.first_delay())
                    except _Stopped:
                        break
                conn = await self._connect()
                if conn is None:
                    break
                await self._serve(conn)
                lost = True
        finally:
            await self._flush_deletes(1.0)
            deleter.cancel()
            await asyncio.gather(deleter, return_exceptions=True)
            self.stats.state = "stopped"
            self.stats.inflight_batches = 0
            self._running = False
            self._finished.set()

    async def stop(self, timeout: float | None = None) -> None:
        """Stop taking batches, wait briefly for acknowledgements, say offline, disconnect."""
        self._stopping = True
        self._stop_event.set()
        self._changed.set()
        if not self._running:
            return
        limit = timeout if timeout is not None else self._drain_timeout + 4.0
        try:
            async with asyncio.timeout(limit):
                await self._finished.wait()
        except TimeoutError:
            log.warning("MQTT uplink did not stop within %.0f s", limit)

    # -- connecting -----------------------------------------------------------------------

    async def _connect(self) -> Connection | None:
        retrying = AsyncRetrying(
            wait=self._backoff,
            retry=retry_if_exception_type(ConnectFailed),
            sleep=self._sleep_unless_stopped,
            before_sleep=self._before_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt()
        except _Stopped:
            return None
        return None  # pragma: no cover - tenacity either returns or raises

    async def _attempt(self) -> Connection:
        if self._stopping:
            raise _Stopped
        self.stats.state = "connecting"
        params = self._params()
        opening = asyncio.create_task(self._open_session(params), name="uplink-connect")
        stop = asyncio.create_task(self._stop_event.wait())
        await asyncio.wait({opening, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not opening.done():
            opening.cancel()
            await asyncio.gather(opening, return_exceptions=True)
            raise _Stopped
        try:
            conn = opening.result()
        except ConnectFailed as exc:
            self.stats.state = "disconnected"
            self.stats.connect_failures += 1
            self._note_error(exc)
            raise
        self.stats.connects += 1
        self.stats.state = "connected"
        self.stats.connected_since = self._wall()
        self._connect_problem.recovered(f"MQTT: connected to {params.address}")
        log.info(
            "MQTT: connected to %s as %s (%s, delivery %s)",
            params.address,
            params.client_id,
            "session resumed" if conn.session_present else "new session",
            self.settings.delivery,
        )
        return conn

    async def _open_session(self, params: ConnectParams) -> Connection:
        conn = await self._open(params, self._on_message)
        try:
            if self._e2e:
                await conn.subscribe(self._acks_topic, qos=1)
            if self.commands is not None:
                await self._subscribe_commands(conn, self.commands.topic_filter)
        except ConnectionLost as exc:
            raise BrokerUnreachable(f"connection lost while subscribing: {exc.reason}") from exc
        except BaseException:
            conn.abort("subscription failed")
            raise
        return conn

    async def _subscribe_commands(self, conn: Connection, topic: str) -> None:
        try:
            await conn.subscribe(topic, qos=1)
        except SubscribeRejected as exc:
            # Forwarding events matters more than commands: carry on without them.
            log.warning("MQTT: remote commands unavailable on this connection: %s", exc)

    def publish_reply(self, topic: str, payload: bytes, correlation: bytes | None) -> None:
        """Publish a command reply (QoS 1, not stored) now; raises when not connected."""
        conn = self._conn
        if conn is None or not conn.is_open:
            raise ConnectionLost("not connected")
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ContentType = "application/json"
        if correlation is not None:
            props.CorrelationData = correlation
        conn.publish(topic, payload, properties=props).add_done_callback(self._reply_published)

    def _reply_published(self, fut: asyncio.Future[None]) -> None:
        exc = None if fut.cancelled() else fut.exception()
        if exc is not None:
            log.warning("MQTT: command reply not delivered: %s", exc)

    def _params(self) -> ConnectParams:
        will = Will(self._status_topic, status_payload("offline", boot=self.boot, epoch=self._outbox.epoch))
        max_inflight = min(100, max(20, 2 * self.settings.inflight_batches + 4))
        return ConnectParams.from_settings(
            self.settings, device_id=self.device_id, will=will, max_inflight=max_inflight
        )

    async def _sleep_unless_stopped(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                await self._stop_event.wait()
        except TimeoutError:
            return
        raise _Stopped

    async def _before_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        if exc is not None:
            self._connect_problem.failed(exc, f"retrying in {delay:.1f} s; events keep buffering")

    def _note_error(self, exc: BaseException) -> None:
        self.stats.last_error = str(exc)
        self.stats.last_error_at = self._wall()

    # -- one session ----------------------------------------------------------------------

    async def _serve(self, conn: Connection) -> None:
        try:
            await self._session(conn)
        except BaseException:
            # Cancelled (or a bug): drop the socket without DISCONNECT, so the broker
            # publishes our will, as for any device that vanishes.
            conn.abort("uplink task ended")
            raise

    async def _session(self, conn: Connection) -> None:
        self._begin_session(conn)
        try:
            birth = conn.publish(
                self._status_topic,
                status_payload("online", boot=self.boot, epoch=self._outbox.epoch, ts=now()),
                retain=True,
            )
            birth.add_done_callback(self._status_published)
        except UplinkError:
            pass  # already closed: conn.closed tells the loop below
        pump = asyncio.create_task(self._pump(conn), name="uplink-pump")
        timer = asyncio.create_task(self._watch_acks(conn), name="uplink-ack-timer")
        stop = asyncio.create_task(self._stop_event.wait())
        waiters: set[asyncio.Future[Any]] = {pump, timer, stop, conn.closed}
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, timer, stop):
                task.cancel()
            results = await asyncio.gather(pump, timer, stop, return_exceptions=True)
            for reader in (self._priority, self._live, self._backlog):
                if reader is not None:
                    reader.close()
        for result in results[:2]:
            if isinstance(result, Exception):
                conn.abort(f"uplink failure: {result!r}")
                raise result
        if self._stopping and not conn.closed.done():
            await self._drain_and_close(conn)
            return
        lost = conn.closed.result()
        self.stats.connections_lost += 1
        self.stats.state = "disconnected"
        self.stats.connected_since = None
        self._note_error(lost)
        if not self._stopping:
            log.warning("MQTT: %s; reconnecting, events keep buffering", lost)

    def _begin_session(self, conn: Connection) -> None:
        s = self.settings
        self._conn = conn
        live_from = self._outbox.next_seq
        # One outbox query per several batches, bounded in memory.
        prefetch = max(s.batch_max_events, min(20 * s.batch_max_events, 2000))
        # Seqs still in flight or being deleted from earlier connections are all below this.
        skip_below = max(max(self._by_seq, default=0), max(self._deleting, default=0)) + 1
        reader = partial(LaneReader, self._outbox, prefetch=prefetch, skip=self._skip, skip_below=skip_below)
        self._priority = reader("priority")
        self._live = reader("live", after_seq=live_from - 1)
        self._live_from = live_from
        self._backlog = reader("backlog", before_seq=live_from)
        capacity = max(float(s.batch_max_events), s.backlog_rate)
        self._bucket = TokenBucket(s.backlog_rate, capacity, clock=self._clock, initial=s.batch_max_events)
        self._window = s.inflight_batches
        if conn.receive_maximum:
            # Leave room for the status messages within the broker's Receive Maximum.
            self._window = max(1, min(self._window, conn.receive_maximum - 2))
        self._max_bytes = s.batch_max_bytes
        if conn.maximum_packet_size:
            limit = conn.maximum_packet_size - len(self._events_topic) - PACKET_OVERHEAD
            self._max_bytes = max(1024, min(self._max_bytes, limit))
        # Everything not confirmed on the last connection goes again, first.
        self._resend = deque(r for r in self._inflight if not r.done)
        for rec in self._resend:
            rec.future = None
            rec.pubacked = False
        self._pause_until = 0.0

    def _status_published(self, fut: asyncio.Future[None]) -> None:
        exc = None if fut.cancelled() else fut.exception()
        if exc is not None and not isinstance(exc, ConnectionLost):
            log.warning("MQTT: status message not accepted: %s", exc)

    async def _drain_and_close(self, conn: Connection) -> None:
        self.stats.state = "stopping"
        deadline = self._clock() + self._drain_timeout
        while not conn.closed.done() and any(r.future is not None for r in self._inflight):
            left = deadline - self._clock()
            if left <= 0:
                log.info(
                    "MQTT: stopping with %d batch(es) unacknowledged; they stay in the outbox",
                    sum(1 for r in self._inflight if r.future is not None),
                )
                break
            self._changed.clear()
            changed = asyncio.create_task(self._changed.wait())
            waiters: set[asyncio.Future[Any]] = {changed, conn.closed}
            await asyncio.wait(waiters, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            changed.cancel()
        await self._flush_deletes(max(0.5, deadline - self._clock()))
        if conn.closed.done():
            return
        try:
            offline = conn.publish(
                self._status_topic,
                status_payload("offline", boot=self.boot, epoch=self._outbox.epoch, ts=now()),
                retain=True,
            )
            async with asyncio.timeout(1.0):
                await offline
        except (UplinkError, TimeoutError) as exc:
            log.warning("MQTT: offline status not confirmed: %s", exc or "timeout")
        await conn.close(1.0)

    # -- the pump: choose, cut and publish batches ----------------------------------------

    async def _pump(self, conn: Connection) -> None:
        while not self._stopping:
            self._changed.clear()
            now_ = self._clock()
            if now_ < self._pause_until:
                await self._wait_changed(self._pause_until - now_)
                continue
            if self._resend:
                again = self._resend.popleft()
                if not again.done and again.future is None and not self._send(conn, again):
                    await asyncio.shield(conn.closed)
                    return
                continue
            if len(self._inflight) >= self._window:
                await self._changed.wait()
                continue
            mark = self._outbox.next_seq
            try:
                rec, wait = await self._next_batch(mark)
            except OUTBOX_ERRORS as exc:
                self._outbox_problem.failed(exc, "retrying in 1 s")
                await self._wait_changed(1.0)
                continue
            if rec is not None:
                if self._stopping:
                    break
                self._track(rec)
                if not self._send(conn, rec):
                    await asyncio.shield(conn.closed)
                    return
                continue
            await self._idle(mark - 1, wait)

    async def _next_batch(self, mark: int) -> tuple[InFlight | None, float | None]:
        """The next batch by lane preference, or None and how long the token bucket needs."""
        assert self._priority and self._live and self._backlog and self._bucket
        max_events = self.settings.batch_max_events
        for reader in (self._priority, self._live):
            batch = await self._read(reader, mark, max_events)
            if batch:
                return InFlight(batch, reader.name), None
        if self._backlog.exhausted(mark):
            return None, None
        need = min(max_events, self._bucket.capacity)
        available = self._bucket.available()
        if available < need:
            return None, self._bucket.seconds_until(need)
        batch = await self._read(self._backlog, mark, min(max_events, int(available)))
        self._bucket.take(len(batch))
        return (InFlight(batch, "backlog"), None) if batch else (None, None)

    async def _read(self, reader: LaneReader, mark: int, max_events: int) -> list[StoredEvent]:
        batch = await reader.next_batch(
            mark, max_events=max_events, max_bytes=self._max_bytes, overhead=self._overhead
        )
        if self._outbox_problem.failing:
            self._outbox_problem.recovered("MQTT uplink: the outbox answers again")
        return batch

    def _skip(self, seq: int) -> bool:
        return seq in self._by_seq or seq in self._deleting

    def _track(self, rec: InFlight) -> None:
        self._inflight[rec] = None
        for e in rec.events:
            self._by_seq[e.seq] = rec
        self.stats.inflight_batches = len(self._inflight)

    def _send(self, conn: Connection, rec: InFlight) -> bool:
        """Publish ``rec``'s pending events; False when the connection is gone."""
        if len(rec.pending) < len(rec.events):
            rec.events = [e for e in rec.events if e.seq in rec.pending]
        payload = self._payload(rec.events)
        try:
            fut = conn.publish(self._events_topic, payload, qos=1, properties=self._properties)
        except UplinkError as exc:
            # Not connected any more: the record is sent again on the next connection.
            self._resend.appendleft(rec)
            conn.abort(f"publish failed: {exc}")
            return False
        if rec.sends:
            self.stats.resent_batches += 1
            self.stats.resent_events += len(rec.events)
        rec.sends += 1
        rec.future = fut
        rec.pubacked = False
        rec.published_at = self._clock()
        if rec.sends == 1:
            rec.first_published_at = rec.published_at
        self.stats.published_batches += 1
        self.stats.published_events += len(rec.events)
        self.stats.published_bytes += len(payload)
        fut.add_done_callback(partial(self._on_puback, rec))
        return True

    def _payload(self, events: list[StoredEvent]) -> bytes:
        """The batch payload: :func:`edge_protocol.wire.encode_batch`'s bytes exactly.

        When the outbox hands over each envelope's stored JSON text (``body``, the compact
        form ``encode_batch`` writes), the texts are joined instead of decoded and encoded
        again: the largest cost of a drain on a small CPU.
        """
        raw = (self._batch_head + ",".join(e.body for e in events) + "]}").encode()
        return zlib.compress(raw, 6) if self._compression == ZLIB else raw

    async def _wait_changed(self, timeout: float | None) -> None:
        try:
            async with asyncio.timeout(timeout):
                await self._changed.wait()
        except TimeoutError:
            pass

    async def _idle(self, after_seq: int, wait: float | None) -> None:
        """Until something is committed, the window or resend queue changes, or ``wait`` passes."""
        timeout = IDLE_RECHECK if wait is None else min(wait, IDLE_RECHECK)
        committed = asyncio.create_task(self._outbox.wait_for_events(after_seq, timeout))
        changed = asyncio.create_task(self._changed.wait())
        done, pending = await asyncio.wait(
            {committed, changed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()
        woken = changed in done
        if committed in done:
            if (exc := committed.exception()) is None:
                woken = woken or committed.result()
            elif isinstance(exc, OUTBOX_ERRORS):
                self._outbox_problem.failed(exc, "retrying")
            else:
                raise exc
        if not woken:
            # Belt and braces: look at every lane again even without a notification.
            for reader in (self._priority, self._live, self._backlog):
                if reader is not None:
                    reader.forget_empty()

    # -- acknowledgements -----------------------------------------------------------------

    def _on_puback(self, rec: InFlight, fut: asyncio.Future[None]) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if rec.future is not fut or rec.done:
            return
        if exc is None:
            if self._rejections:
                self._rejections = 0
                self._publish_problem.recovered("MQTT: the broker accepts our publishes again")
            if self._e2e:
                rec.pubacked = True
                rec.pubacked_at = self._clock()
            else:
                self._confirm(rec, set(rec.pending))
            return
        rec.future = None
        if isinstance(exc, PublishRejected):
            self.stats.rejected_batches += 1
            self._note_error(exc)
            now_ = self._clock()
            if now_ >= self._pause_until:
                self._rejections += 1
                delay = self._backoff.delay(self._rejections)
                self._pause_until = now_ + delay
                self._publish_problem.failed(exc, f"events kept, sending again in {delay:.1f} s")
            self._resend.append(rec)
            self._changed.set()
        # ConnectionLost: _begin_session queues the record again on the next connection.

    def _confirm(self, rec: InFlight, seqs: set[int]) -> None:
        seqs &= rec.pending
        if not seqs:
            return
        rec.pending -= seqs
        for s in seqs:
            self._by_seq.pop(s, None)
        self._confirmed.extend(seqs)
        self._deleting.update(seqs)
        self._deletes_idle.clear()
        self._last_confirm_wall = self._wall()
        self.stats.acked_events += len(seqs)
        if not rec.pending:
            rec.done = True
            self._inflight.pop(rec, None)
            self.stats.acked_batches += 1
            self.stats.inflight_batches = len(self._inflight)
            for observe in self.latency_observers:
                observe(self._clock() - rec.first_published_at)
        self._delete_needed.set()
        self._changed.set()

    def _on_message(self, message: Message) -> None:
        if self.commands is not None and self.commands.matches(message.topic):
            self.commands.receive(message)
            return
        if message.topic != self._acks_topic:
            return
        try:
            ack = parse_ack(message.payload)
        except ValueError as exc:
            self.stats.malformed_acks += 1
            self._ack_problem.failed(exc, "counted and ignored")
            return
        if ack.epoch != self._outbox.epoch:
            self.stats.foreign_epoch_acks += 1
            log.debug("MQTT: ack for epoch %s ignored (ours is %s)", ack.epoch, self._outbox.epoch)
            return
        self._ack_problem.recovered("MQTT: well-formed acks again")
        hits: dict[InFlight, set[int]] = {}
        by_seq = self._by_seq
        for first, last in ack.seqs:
            if last - first < len(by_seq):
                for s in range(first, last + 1):
                    if (rec := by_seq.get(s)) is not None:
                        hits.setdefault(rec, set()).add(s)
            else:
                for s, rec in by_seq.items():
                    if first <= s <= last:
                        hits.setdefault(rec, set()).add(s)
        if hits:
            self._ingest_problem.recovered("MQTT: the ingest acknowledges again")
        for rec, seqs in hits.items():
            self._confirm(rec, seqs)

    async def _watch_acks(self, conn: Connection) -> None:
        """Resend batches the ingest has not confirmed ``ack_timeout`` after their PUBACK;
        drop a connection whose PUBACKs stopped coming.

        The PUBACK allowance is ``max(ack_timeout, 2 × keepalive)``: a dead connection is
        normally found by paho's keep-alive, and a slow link needs time to carry a full
        window; this only catches a broker that answers pings but not publishes.
        """
        timeout = self.settings.ack_timeout
        puback_timeout = max(timeout, 2 * self.settings.keepalive)
        period = max(0.05, min(1.0, timeout / 4))
        while True:
            await asyncio.sleep(period)
            now_ = self._clock()
            overdue: list[InFlight] = []
            for rec in self._inflight:
                if rec.future is None or rec.done:
                    continue
                if not rec.pubacked:
                    if now_ - rec.published_at >= puback_timeout:
                        err = PublishTimeout(f"no PUBACK within {puback_timeout:g} s")
                        self._note_error(err)
                        conn.abort(str(err))
                        return
                elif now_ - rec.pubacked_at >= timeout:
                    overdue.append(rec)
            for rec in overdue:
                rec.future = None
                self._resend.append(rec)
            if overdue:
                self._ingest_problem.failed(
                    UplinkError(f"batches not confirmed by the ingest within {timeout:g} s"),
                    f"sending {len(overdue)} batch(es) again",
                )
                self._changed.set()

    # -- deleting what is confirmed -------------------------------------------------------

    async def _deleter(self) -> None:
        while True:
            await self._delete_needed.wait()
            self._delete_needed.clear()
            while self._confirmed:
                self._deletes_idle.clear()
                seqs, self._confirmed = self._confirmed, []
                wall = self._last_confirm_wall
                try:
                    await self._outbox.delete(seqs)
                    await self._outbox.record_publish(wall)
                except OUTBOX_ERRORS as exc:
                    self._confirmed[:0] = seqs
                    self._outbox_problem.failed(exc, "deleting again in 1 s (the events may be sent twice)")
                    await asyncio.sleep(1.0)
                    continue
                self._deleting.difference_update(seqs)
                self.stats.last_publish_at = wall
            self._deletes_idle.set()

    async def _flush_deletes(self, timeout: float) -> None:
        if self._deletes_idle.is_set():
            return
        self._delete_needed.set()
        try:
            async with asyncio.timeout(timeout):
                await self._deletes_idle.wait()
        except TimeoutError:
            log.warning(
                "MQTT: %d acknowledged event(s) not yet deleted; they may be sent again",
                len(self._confirmed) + len(self._deleting),
            )
