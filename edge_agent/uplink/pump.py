"""The pump: chooses, cuts and publishes batches for as long as a session lasts.

Each turn, in this order: nothing while a rejected publish's backoff runs; a batch to send
again, if any is queued; nothing more while the window is full; else the next batch by
lane (:mod:`edge_agent.uplink.lanes`: priority, live, backlog within its token bucket),
recorded in the window and published at QoS 1 without waiting for its PUBACK (one PUBACK
at a time stalls on Nagle).  With nothing to send it waits for a commit, a change of the
window, or the bucket.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial

from edge_agent.events import StoredEvent
from edge_agent.settings import MQTTSettings
from edge_agent.uplink.client import Connection
from edge_agent.uplink.errors import UplinkError
from edge_agent.uplink.lanes import LaneReader, TokenBucket
from edge_agent.uplink.outbox_api import OUTBOX_ERRORS, OutboxAPI
from edge_agent.uplink.payload import BatchEncoder
from edge_agent.uplink.problems import ProblemSeries
from edge_agent.uplink.stats import UplinkStats
from edge_agent.uplink.stopping import StopSignal
from edge_agent.uplink.window import InFlight, Window

IDLE_RECHECK = 1.0
"""Seconds an idle forwarder waits before looking at the outbox again regardless."""

PubackHandler = Callable[[InFlight, asyncio.Future[None]], None]
"""Called with a record and the PUBLISH future of its send, once that future is done."""


class Pump:
    def __init__(
        self,
        outbox: OutboxAPI,
        settings: MQTTSettings,
        *,
        window: Window,
        encoder: BatchEncoder,
        stats: UplinkStats,
        changed: asyncio.Event,
        stop: StopSignal,
        outbox_problem: ProblemSeries,
        clock: Callable[[], float],
        skip: Callable[[int], bool],
        on_puback: PubackHandler,
    ) -> None:
        self._outbox = outbox
        self._settings = settings
        self._window = window
        self._encoder = encoder
        self._stats = stats
        self._changed = changed
        """Set whenever the window, its resend queue or the stop request changes."""
        self._stop = stop
        self._outbox_problem = outbox_problem
        self._clock = clock
        self._skip = skip
        """Seqs the lanes leave out: in flight or being deleted (from earlier connections)."""
        self._on_puback = on_puback
        self._priority: LaneReader | None = None
        self._live: LaneReader | None = None
        self._backlog: LaneReader | None = None
        self._bucket: TokenBucket | None = None
        self.live_from: int | None = None
        """First seq of the live lane of the current session (None before the first one)."""

    def open_lanes(self, live_from: int, skip_below: int) -> None:
        """A new session's lanes: live from ``live_from`` on, backlog below it."""
        s = self._settings
        # One outbox query per several batches, bounded in memory.
        prefetch = max(s.batch_max_events, min(20 * s.batch_max_events, 2000))
        reader = partial(LaneReader, self._outbox, prefetch=prefetch, skip=self._skip, skip_below=skip_below)
        self._priority = reader("priority")
        self._live = reader("live", after_seq=live_from - 1)
        self.live_from = live_from
        self._backlog = reader("backlog", before_seq=live_from)
        capacity = max(float(s.batch_max_events), s.backlog_rate)
        self._bucket = TokenBucket(s.backlog_rate, capacity, clock=self._clock, initial=s.batch_max_events)

    def close_lanes(self) -> None:
        """Drop the lanes' read-aheads (the session is over)."""
        for reader in (self._priority, self._live, self._backlog):
            if reader is not None:
                reader.close()

    async def run(self, conn: Connection) -> None:
        """Publish on ``conn`` until stop is requested; returns early once ``conn`` is closed."""
        while not self._stop.requested:
            self._changed.clear()
            now_ = self._clock()
            if now_ < self._window.pause_until:
                await self._wait_changed(self._window.pause_until - now_)
                continue
            again = self._window.next_resend()
            if again is not None:
                if not again.done and again.future is None and not self._send(conn, again):
                    await asyncio.shield(conn.closed)
                    return
                continue
            if self._window.full:
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
                if self._stop.requested:
                    break
                self._window.track(rec)
                self._stats.inflight_batches = len(self._window)
                if not self._send(conn, rec):
                    await asyncio.shield(conn.closed)
                    return
                continue
            await self._idle(mark - 1, wait)

    async def _next_batch(self, mark: int) -> tuple[InFlight | None, float | None]:
        """The next batch by lane preference, or None and how long the token bucket needs."""
        assert self._priority and self._live and self._backlog and self._bucket
        max_events = self._settings.batch_max_events
        # Each lane with its own mark: a reading committed does not make the priority lane look again.
        for reader, lane_mark in ((self._priority, self._outbox.priority_mark), (self._live, mark)):
            batch = await self._read(reader, lane_mark, max_events)
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
            mark, max_events=max_events, max_bytes=self._encoder.max_bytes, overhead=self._encoder.overhead
        )
        if self._outbox_problem.failing:
            self._outbox_problem.recovered("MQTT uplink: the outbox answers again")
        return batch

    def _send(self, conn: Connection, rec: InFlight) -> bool:
        """Publish ``rec``'s pending events; False when the connection is gone."""
        if len(rec.pending) < len(rec.events):
            rec.events = [e for e in rec.events if e.seq in rec.pending]
        payload = self._encoder.payload(rec.events)
        try:
            fut = conn.publish(self._encoder.topic, payload, qos=1, properties=self._encoder.properties)
        except UplinkError as exc:
            # Not connected any more: the record is sent again on the next connection.
            self._window.resend_first(rec)
            conn.abort(f"publish failed: {exc}")
            return False
        if rec.sends:
            self._stats.resent_batches += 1
            self._stats.resent_events += len(rec.events)
        rec.sends += 1
        rec.future = fut
        rec.pubacked = False
        rec.published_at = self._clock()
        if rec.sends == 1:
            rec.first_published_at = rec.published_at
        self._stats.published_batches += 1
        self._stats.published_events += len(rec.events)
        self._stats.published_bytes += len(payload)
        fut.add_done_callback(partial(self._on_puback, rec))
        return True

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
