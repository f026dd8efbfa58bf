"""``POST /v1/import``'s write path: a file of ``edge-agent buffer export`` stored like MQTT batches.

The file is JSON lines, one event envelope per line, in seq order, as the outbox stores
them (``edge_agent.outbox.stats.export_pending``); it does not name the device, so the
caller does.  Each line is validated as an :class:`~edge_protocol.wire.EnvelopeDict`; the
valid ones go through the same :class:`~edge_cloud.ingest.store.Store` as the consumer's
batches — same rows, same ledger, so an event imported and also received over MQTT (or
imported twice) is stored once — in transactions of ``consumer.batch_max_events``.
After each commit the same end-to-end acks are published (through the consumer's
connection), so a device that gets its uplink back deletes what was imported.

A line that is not an envelope is refused on its own (``malformed``, or ``oversized``
beyond ``consumer.max_payload_bytes``), quarantined with topic ``import/{device_id}``
and counted; an event that cannot be stored is refused like one in a batch
(``invalid_event``).  A file in which no line is an envelope is refused as a whole
(:class:`ImportRefused`, nothing stored): it is not an export.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import ValidationError

from edge_cloud.ingest.acks import AckPublisher
from edge_cloud.ingest.consumer.decode import first_error
from edge_cloud.ingest.consumer.known_devices import Verdict
from edge_cloud.ingest.consumer.metrics import IngestMetrics
from edge_cloud.ingest.errors import ImportRefused
from edge_cloud.ingest.settings import IngestSettings
from edge_cloud.ingest.store import EventsMessage, Refusal, RefusalReason, Store, Work
from edge_cloud.ingest.store.prepare import QUARANTINE_HEAD_BYTES
from edge_protocol.wire import DEVICE_ID_PATTERN, ENVELOPE_DICT, EnvelopeDict

log = logging.getLogger(__name__)

NOT_AN_EXPORT_LINES = 1000
"""That many lines and not one envelope: the file is refused before reading on."""


@dataclass
class ImportReport:
    device_id: str
    lines: int = 0
    """Non-blank lines read."""
    events: int = 0
    """Lines that are envelopes."""
    stored: int = 0
    duplicates: int = 0
    refused: int = 0
    """Lines that are not envelopes, and events that cannot be stored."""
    acks_published: int = 0
    epochs: set[str] = field(default_factory=set)


class Importer:
    """Shared by every import; :meth:`start` one :class:`ImportRun` per file."""

    def __init__(
        self,
        store: Store,
        acks: AckPublisher,
        metrics: IngestMetrics,
        settings: IngestSettings,
        *,
        check_device: Callable[[str], Verdict] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.acks = acks
        self.metrics = metrics
        self.batch_events = settings.consumer.batch_max_events
        self.max_line_bytes = settings.consumer.max_payload_bytes
        self.check_device = check_device
        self.clock = clock

    def start(self, device_id: str) -> ImportRun:
        """Raises :class:`ImportRefused` for a device id that is not one, or not enabled."""
        if not DEVICE_ID_PATTERN.fullmatch(device_id):
            raise ImportRefused(f"{device_id[:80]!r} is not a device id", status=422)
        if self.check_device is not None:
            verdict = self.check_device(device_id)
            if verdict != "ok":
                raise ImportRefused(f"the auth service lists no enabled device {device_id}", status=403)
        return ImportRun(self, device_id)

    def import_bytes(self, device_id: str, data: bytes) -> ImportReport:
        """A whole file at once (tests, scripts)."""
        run = self.start(device_id)
        run.feed(data)
        return run.finish()


class ImportRun:
    """One file, fed in pieces as they arrive (:meth:`feed`), stored as transactions fill."""

    def __init__(self, importer: Importer, device_id: str) -> None:
        self.importer = importer
        self.report = ImportReport(device_id)
        self.source = f"import/{device_id}"
        self._partial = bytearray()
        self._skipping = False
        """In a line longer than the limit: drop bytes until its end."""
        self._events: list[EnvelopeDict] = []
        self._refusals: list[Refusal] = []

    def feed(self, data: bytes) -> None:
        """The next bytes of the file; stores a transaction's worth whenever there is one."""
        limit = self.importer.max_line_bytes
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                if not self._skipping:
                    self._partial += data[start:]
                    if len(self._partial) > limit:
                        self.report.lines += 1
                        self._refuse("oversized", f"a line longer than {limit} bytes", bytes(self._partial))
                        self._partial.clear()
                        self._skipping = True
                break
            if self._skipping:
                self._skipping = False
            else:
                self._partial += data[start:end]
                self._line(bytes(self._partial))
            self._partial.clear()
            start = end + 1
        if len(self._events) + len(self._refusals) >= self.importer.batch_events:
            self._flush()

    def finish(self) -> ImportReport:
        """Store what is left; the report.  Raises :class:`ImportRefused` when no line was an envelope."""
        if self._partial and not self._skipping:
            self._line(bytes(self._partial))
            self._partial.clear()
        if self.report.lines and not self.report.events:
            raise ImportRefused(
                f"none of the {self.report.lines} lines is an event envelope: "
                "not a file written by edge-agent buffer export",
                status=422,
            )
        self._flush()
        log.info(
            "import for %s: %d lines, %d stored, %d duplicates, %d refused",
            self.report.device_id,
            self.report.lines,
            self.report.stored,
            self.report.duplicates,
            self.report.refused,
        )
        return self.report

    def _line(self, line: bytes) -> None:
        line = line.strip()
        if not line:
            return
        self.report.lines += 1
        if len(line) > self.importer.max_line_bytes:
            self._refuse("oversized", f"a line longer than {self.importer.max_line_bytes} bytes", line)
            return
        try:
            envelope = ENVELOPE_DICT.validate_json(line)
        except ValidationError as exc:
            self._refuse("malformed", f"line {self.report.lines}: not an envelope: {first_error(exc)}", line)
            return
        self.report.events += 1
        self.report.epochs.add(envelope["epoch"])
        self._events.append(envelope)
        if len(self._events) >= self.importer.batch_events:
            self._flush()

    def _refuse(self, reason: RefusalReason, detail: str, raw: bytes) -> None:
        self.report.refused += 1
        if not self.report.events and self.report.lines >= NOT_AN_EXPORT_LINES:
            raise ImportRefused(
                f"none of the first {self.report.lines} lines is an event envelope: "
                "not a file written by edge-agent buffer export",
                status=422,
            )
        self._refusals.append(
            Refusal(
                reason,
                detail,
                self.source,
                self.report.device_id,
                len(raw),
                raw[:QUARANTINE_HEAD_BYTES],
                self.importer.clock(),
            )
        )

    def _flush(self) -> None:
        if not self.report.events or not (self._events or self._refusals):
            return  # no envelope yet: maybe not an export at all, decided before anything is stored
        importer = self.importer
        messages = []
        if self._events:
            messages = [EventsMessage(self.report.device_id, self._events, importer.clock(), self.source)]
        work = Work(events=messages, refusals=self._refusals)
        self._events, self._refusals = [], []
        outcome = importer.store.write(work)
        importer.metrics.received_events.inc(work.event_count)
        importer.metrics.outcome(outcome)
        for refusal in work.refusals:
            importer.metrics.refusal(refusal.reason)
        self.report.stored += outcome.stored
        self.report.duplicates += outcome.duplicates
        self.report.refused += len(outcome.refused_events)
        self.report.acks_published += importer.acks.publish_acks(outcome.acks)
