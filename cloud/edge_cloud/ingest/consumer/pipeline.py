"""From received messages to commits and acknowledgements: two threads and two queues.

::

    paho's thread ──put()──► inbox ──► decoding thread ──► ready ──► writing thread
      (only enqueues)                  decode, refuse,              batch, one transaction,
                                       build the rows               acks published, PUBACKs

The **decoding** thread turns each message into a batch, a status or a refusal, and
builds the batch's rows (``EventsMessage.converted``), so the **writing** thread only
runs transactions.  The writing thread gathers messages, from any device, until
``consumer.batch_max_events`` events or ``consumer.batch_max_wait`` after the first one
arrived, stores them in one transaction, and only after the commit publishes the
end-to-end acks and PUBACKs the messages.  A crash before that loses nothing: the
broker delivers the messages again (to the same client id) and they are stored once.

The queues need no bound of their own: the broker sends no more than
``mqtt.receive_maximum`` messages we have not PUBACKed.

Failures: a transient database failure is retried with jittered backoff for as long as
it lasts (the messages stay unacknowledged; the broker holds the rest back).  Data the
database refuses (``StoreRejected``) is written again message by message, and a message
that still fails is quarantined as ``unstorable`` and acknowledged, so one bad message
cannot stop the stream.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_random_exponential

from edge_cloud.ingest.acks import AckPublisher
from edge_cloud.ingest.consumer.decode import Item, decode
from edge_cloud.ingest.consumer.known_devices import Verdict
from edge_cloud.ingest.consumer.metrics import IngestMetrics
from edge_cloud.ingest.consumer.session import Received
from edge_cloud.ingest.errors import StoreRejected, StoreUnavailable
from edge_cloud.ingest.settings import ConsumerSettings
from edge_cloud.ingest.store import EventsMessage, Outcome, Refusal, StatusMessage, Store, Work
from edge_cloud.ingest.store.prepare import QUARANTINE_HEAD_BYTES

log = logging.getLogger(__name__)

_STOP = None


@dataclass
class Pending:
    """A decoded message waiting for its transaction."""

    received: Received
    item: Item | None
    """None: nothing to store (an empty retained status); PUBACKed with the rest."""

    @property
    def weight(self) -> int:
        return len(self.item.events) if isinstance(self.item, EventsMessage) else 1


class Pipeline:
    def __init__(
        self,
        store: Store,
        acks: AckPublisher,
        metrics: IngestMetrics,
        settings: ConsumerSettings,
        *,
        check_device: Callable[[str], Verdict] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.acks = acks
        self.metrics = metrics
        self.settings = settings
        self._check_device = check_device
        self._monotonic = monotonic
        self._inbox: queue.SimpleQueue[Received | None] = queue.SimpleQueue()
        self._ready: queue.SimpleQueue[Pending | None] = queue.SimpleQueue()
        self._closed = threading.Event()
        self._abandon = threading.Event()
        self._decoder = threading.Thread(target=self._decode_loop, name="ingest-decode", daemon=True)
        self._writer = threading.Thread(target=self._write_loop, name="ingest-write", daemon=True)
        self.committed = 0
        """Transactions committed (tests wait on it)."""

    def start(self) -> None:
        self._decoder.start()
        self._writer.start()

    def put(self, received: Received) -> None:
        """paho's network thread: hand a message on (never blocks)."""
        if self._closed.is_set():
            return  # not PUBACKed: the broker delivers it again to this client id
        self.metrics.pending_messages.inc()
        kind = "events" if received.topic.endswith("/events") else "status"
        self.metrics.received_messages.labels(topic=kind).inc()
        self._inbox.put(received)

    def stop(self, timeout: float = 30.0) -> bool:
        """Take no more messages, commit and acknowledge those received; True if done in time.

        After ``timeout`` (a database that does not come back) the rest is abandoned,
        unacknowledged: the broker keeps it for the next start."""
        self._closed.set()
        self._inbox.put(_STOP)
        self._decoder.join(timeout)
        self._writer.join(max(0.0, timeout))
        if self._writer.is_alive():
            self._abandon.set()
            self._writer.join(10)
            return False
        return True

    # -- decoding thread ---------------------------------------------------------------

    def _decode_loop(self) -> None:
        while (received := self._inbox.get()) is not _STOP:
            try:
                item = decode(
                    received.topic,
                    received.payload,
                    content_encoding=received.content_encoding,
                    received_at=received.received_at,
                    retained=received.retain,
                    max_bytes=self.settings.max_payload_bytes,
                    check_device=self._check_device,
                )
                if isinstance(item, EventsMessage):
                    self.metrics.received_events.inc(len(item.events))
                    _ = item.converted  # the rows, built here rather than in the writing thread
            except Exception:  # a bug must not end the thread: the message waits, unacknowledged
                log.exception("cannot decode a message on %s; it stays unacknowledged", received.topic)
                continue
            self._ready.put(Pending(received, item))
        self._ready.put(_STOP)

    # -- writing thread ----------------------------------------------------------------

    def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._ready.get()
            if first is _STOP:
                return
            batch = [first]
            weight = first.weight
            deadline = first.received.received_mono + self.settings.batch_max_wait
            while weight < self.settings.batch_max_events:
                try:
                    more = self._ready.get(timeout=max(0.0, deadline - self._monotonic()))
                except queue.Empty:
                    break
                if more is _STOP:
                    stopping = True
                    break
                batch.append(more)
                weight += more.weight
            self._commit(batch)

    def _commit(self, batch: list[Pending]) -> None:
        work = Work()
        for p in batch:
            if isinstance(p.item, EventsMessage):
                work.events.append(p.item)
            elif isinstance(p.item, StatusMessage):
                work.statuses.append(p.item)
            elif isinstance(p.item, Refusal):
                work.refusals.append(p.item)
        outcomes = self._store(work, batch) if work else []
        if outcomes is None:
            return  # abandoned on stop: unacknowledged, delivered again
        for outcome in outcomes:
            self.metrics.outcome(outcome)
            self.metrics.acks_published.inc(self.acks.publish_acks(outcome.acks))
            log.debug(
                "committed %d messages: %d events stored, %d duplicates, %d refused",
                len(batch),
                outcome.stored,
                outcome.duplicates,
                len(outcome.refused_events),
            )
        for refusal in work.refusals:
            self.metrics.refusal(refusal.reason)
        now = self._monotonic()
        for p in batch:
            p.received.session.ack(p.received.mid, p.received.qos)
            self.metrics.message_wait_seconds.observe(now - p.received.received_mono)
        self.metrics.pending_messages.dec(len(batch))
        self.committed += 1

    def _store(self, work: Work, batch: Sequence[Pending]) -> list[Outcome] | None:
        """Outcomes of the transaction(s) holding ``work``; None if abandoned."""
        try:
            return [self._write(work)]
        except StoreRejected as exc:
            log.warning(
                "the database refused a batch of %d messages (%s); storing them one by one", len(batch), exc
            )
            self.metrics.store_failures.labels(kind="rejected").inc()
        except _Abandoned:
            return None
        outcomes = []
        try:
            if work.statuses or work.refusals:
                outcomes.append(self._write(Work(statuses=work.statuses, refusals=work.refusals)))
            for p in batch:
                if isinstance(p.item, EventsMessage):
                    outcomes.append(self._write_alone(p))
        except _Abandoned:
            return None
        return outcomes

    def _write_alone(self, p: Pending) -> Outcome:
        assert isinstance(p.item, EventsMessage)
        try:
            return self._write(Work(events=[p.item]))
        except StoreRejected as exc:
            r = p.received
            refusal = Refusal(
                "unstorable",
                str(exc),
                r.topic,
                p.item.device_id,
                len(r.payload),
                r.payload[:QUARANTINE_HEAD_BYTES],
                p.item.received_at,
                len(p.item.events),
            )
            log.error("quarantined a message on %s the database refuses: %s", r.topic, exc)
            self.metrics.refusal("unstorable")
            try:
                self._write(Work(refusals=[refusal]))
            except StoreRejected:
                log.exception("cannot even quarantine it; acknowledging it anyway")
            return Outcome(0, 0, (), ())

    def _write(self, work: Work) -> Outcome:
        """One transaction, retried with jittered backoff while the database is unavailable."""
        started = self._monotonic()
        retrying = Retrying(
            retry=retry_if_exception_type(StoreUnavailable),
            wait=wait_random_exponential(multiplier=0.2, max=15),
            sleep=self._sleep,
            before_sleep=self._unavailable,
            reraise=True,
        )
        outcome = retrying(self._timed_write, work)
        attempts = int(retrying.statistics.get("attempt_number", 1))
        if attempts > 1:
            log.info(
                "database available again after %d attempts over %.1f s",
                attempts,
                self._monotonic() - started,
            )
        return outcome

    def _timed_write(self, work: Work) -> Outcome:
        t0 = self._monotonic()
        outcome = self.store.write(work)
        self.metrics.commit_seconds.observe(self._monotonic() - t0)
        self.metrics.batch_events.observe(work.event_count)
        return outcome

    def _unavailable(self, state: RetryCallState) -> None:
        self.metrics.store_failures.labels(kind="unavailable").inc()
        if state.attempt_number == 1:
            exc = state.outcome.exception() if state.outcome is not None else None
            log.warning("database unavailable (%s); retrying, the messages wait unacknowledged", exc)

    def _sleep(self, seconds: float) -> None:
        if self._abandon.wait(seconds):
            raise _Abandoned


class _Abandoned(Exception):
    """Stopping while the database is unavailable: leave the messages unacknowledged."""
