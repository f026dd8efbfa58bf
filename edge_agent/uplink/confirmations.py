"""What confirms a batch, and what happens when no confirmation comes.

- The PUBACK of each send (:meth:`Confirmations.on_puback`): in ``broker`` mode it confirms
  the batch; in ``end-to-end`` mode it only moves it to "waiting for the ingest".  A PUBACK
  with a failure reason code is not a success: the batch is kept and sent again after a
  backoff, during which nothing else is sent.
- The ingest's acks on ``devices/{id}/acks`` (:meth:`on_ack`, end-to-end mode): the seqs
  they name that are in flight are confirmed, whatever batch they are in.
- The timer of each session (:meth:`watch`): a batch not confirmed by the ingest within
  ``ack_timeout`` of its PUBACK is sent again; a connection whose PUBACKs stopped coming
  is dropped.

Confirmed seqs leave the window and go to :class:`~edge_agent.uplink.deletions.Deletions`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from edge_agent.settings import MQTTSettings
from edge_agent.uplink.acks import parse_ack
from edge_agent.uplink.backoff import FullJitter
from edge_agent.uplink.client import Connection
from edge_agent.uplink.deletions import Deletions
from edge_agent.uplink.errors import PublishRejected, PublishTimeout, UplinkError
from edge_agent.uplink.outbox_api import OutboxAPI
from edge_agent.uplink.problems import ProblemSeries
from edge_agent.uplink.stats import UplinkStats
from edge_agent.uplink.window import InFlight, Window

log = logging.getLogger("edge_agent.uplink")


class Confirmations:
    def __init__(
        self,
        settings: MQTTSettings,
        *,
        end_to_end: bool,
        outbox: OutboxAPI,
        window: Window,
        deletions: Deletions,
        stats: UplinkStats,
        backoff: FullJitter,
        changed: asyncio.Event,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        batch_confirmed: Callable[[InFlight], None],
    ) -> None:
        self._settings = settings
        self._e2e = end_to_end
        self._outbox = outbox
        self._window = window
        self._deletions = deletions
        self._stats = stats
        self._backoff = backoff
        self._changed = changed
        """Set whenever the window or its resend queue changes: the pump looks again."""
        self._clock = clock
        self._wall = wall_clock
        self._batch_confirmed = batch_confirmed
        self._rejections = 0
        """Rejected publishes in a row: the backoff's attempt number."""
        self._publish_problem = ProblemSeries(log, "MQTT: publish rejected")
        self._ack_problem = ProblemSeries(log, "MQTT: malformed ack dropped")
        self._ingest_problem = ProblemSeries(log, "MQTT: ingest acknowledgement overdue")

    def on_puback(self, rec: InFlight, fut: asyncio.Future[None]) -> None:
        """The outcome of one send of ``rec`` (a done callback of its PUBLISH)."""
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
                self.confirm(rec, set(rec.pending))
            return
        rec.future = None
        if isinstance(exc, PublishRejected):
            self._stats.rejected_batches += 1
            self._stats.note_error(exc, self._wall())
            now_ = self._clock()
            if now_ >= self._window.pause_until:
                self._rejections += 1
                delay = self._backoff.delay(self._rejections)
                self._window.pause_until = now_ + delay
                self._publish_problem.failed(exc, f"events kept, sending again in {delay:.1f} s")
            self._window.resend_later(rec)
            self._changed.set()
        # ConnectionLost: the next session queues the record again (Window.new_session).

    def confirm(self, rec: InFlight, seqs: set[int]) -> None:
        seqs = self._window.take(rec, seqs)
        if not seqs:
            return
        self._deletions.add(seqs)
        self._stats.acked_events += len(seqs)
        if not rec.pending:
            self._window.retire(rec)
            self._stats.acked_batches += 1
            self._stats.inflight_batches = len(self._window)
            self._batch_confirmed(rec)
        self._deletions.wake()
        self._changed.set()

    def on_ack(self, payload: bytes) -> None:
        """A message on the device's acks topic: confirm what it names, drop it if malformed."""
        try:
            ack = parse_ack(payload)
        except ValueError as exc:
            self._stats.malformed_acks += 1
            self._ack_problem.failed(exc, "counted and ignored")
            return
        if ack.epoch != self._outbox.epoch:
            self._stats.foreign_epoch_acks += 1
            log.debug("MQTT: ack for epoch %s ignored (ours is %s)", ack.epoch, self._outbox.epoch)
            return
        self._ack_problem.recovered("MQTT: well-formed acks again")
        hits = self._window.hits(ack.seqs)
        if hits:
            self._ingest_problem.recovered("MQTT: the ingest acknowledges again")
        for rec, seqs in hits.items():
            self.confirm(rec, seqs)

    async def watch(self, conn: Connection) -> None:
        """Resend batches the ingest has not confirmed ``ack_timeout`` after their PUBACK;
        drop a connection whose PUBACKs stopped coming.

        The PUBACK allowance is ``max(ack_timeout, 2 × keepalive)``: a dead connection is
        normally found by paho's keep-alive, and a slow link needs time to carry a full
        window; this only catches a broker that answers pings but not publishes.
        """
        timeout = self._settings.ack_timeout
        puback_timeout = max(timeout, 2 * self._settings.keepalive)
        period = max(0.05, min(1.0, timeout / 4))
        while True:
            await asyncio.sleep(period)
            now_ = self._clock()
            overdue: list[InFlight] = []
            for rec in self._window:
                if rec.future is None or rec.done:
                    continue
                if not rec.pubacked:
                    if now_ - rec.published_at >= puback_timeout:
                        err = PublishTimeout(f"no PUBACK within {puback_timeout:g} s")
                        self._stats.note_error(err, self._wall())
                        conn.abort(str(err))
                        return
                elif now_ - rec.pubacked_at >= timeout:
                    overdue.append(rec)
            for rec in overdue:
                rec.future = None
                self._window.resend_later(rec)
            if overdue:
                self._ingest_problem.failed(
                    UplinkError(f"batches not confirmed by the ingest within {timeout:g} s"),
                    f"sending {len(overdue)} batch(es) again",
                )
                self._changed.set()
