"""What the store is given and what it answers: plain values, no database, no MQTT.

A transaction's input is a :class:`Work`: validated event batches (one per MQTT message
or imported chunk), device status changes, and refusals to quarantine.  Its answer is an
:class:`Outcome`: counts, the events refused one by one, and per device and epoch the seqs
to acknowledge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Literal

from edge_cloud.ingest.store.rows import EventRefused, EventRows, event_rows
from edge_protocol.wire import EnvelopeDict

RefusalReason = Literal[
    "spoofed",
    "malformed",
    "schema",
    "oversized",
    "unknown_device",
    "disabled_device",
    "invalid_event",
    "unstorable",
]
"""Why a message or an event was refused (the ``reason`` label of the refused counter and the
quarantine's ``reason`` column):

- ``spoofed``: the batch's ``device_id`` is not the topic's;
- ``malformed``: not JSON, not zlib, not a batch or status, a bad content-encoding, or a
  topic naming no valid device;
- ``schema``: a batch ``schema`` the ingest does not know;
- ``oversized``: larger than ``consumer.max_payload_bytes`` (before or after decompression);
- ``unknown_device`` / ``disabled_device``: ``consumer.devices = "known"`` and the auth
  service does not list the device as enabled;
- ``invalid_event``: one event of an otherwise good batch (a non-numeric or non-finite
  reading, a reading without a sensor, a ``ts`` that is not a time, a field too long to
  store): the rest of the batch is stored;
- ``unstorable``: the database refused a message the checks let through (the safety net).
"""


@dataclass(frozen=True)
class RefusedEvent:
    event: EnvelopeDict
    detail: str


@dataclass(frozen=True, eq=False)
class EventsMessage:
    """A validated batch of events of one device, with when it was received."""

    device_id: str
    events: Sequence[EnvelopeDict]
    received_at: datetime
    source: str | None = None
    """Where the batch came from, for the quarantine: its topic by default,
    ``import/{device_id}`` for ``POST /v1/import``."""

    @cached_property
    def converted(self) -> list[EventRows | RefusedEvent]:
        """Each event's rows, or why it is refused; computed once.  The consumer asks for
        it in its decoding thread, so the thread holding the transaction only writes."""
        out: list[EventRows | RefusedEvent] = []
        for event in self.events:
            try:
                out.append(event_rows(self.device_id, event, self.received_at))
            except EventRefused as exc:
                out.append(RefusedEvent(event, str(exc)))
        return out


@dataclass(frozen=True)
class StatusMessage:
    """A birth or will from ``devices/{id}/status``."""

    device_id: str
    online: bool
    ts: datetime | None
    """The device's own time of the change (births and clean stops carry one, wills do not)."""
    boot: str | None
    epoch: str | None
    received_at: datetime
    retained: bool
    """Delivered because it was retained: says nothing about when the device was last heard."""
    pending: int | None = None
    """The backlog its outbox reported (births and clean stops of devices that send it)."""


@dataclass(frozen=True)
class Refusal:
    """A message (or one event of a batch) the ingest refuses, for the quarantine."""

    reason: RefusalReason
    detail: str
    topic: str
    device_id: str | None
    size: int
    head: bytes
    received_at: datetime
    events: int = 0
    """Events this refusal stands for (0 when the payload could not be read)."""


@dataclass
class Work:
    """What one transaction stores."""

    events: list[EventsMessage] = field(default_factory=list)
    statuses: list[StatusMessage] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)

    @property
    def event_count(self) -> int:
        return sum(len(m.events) for m in self.events)

    def __bool__(self) -> bool:
        return bool(self.events or self.statuses or self.refusals)


@dataclass(frozen=True)
class DeviceAck:
    """What to publish on ``devices/{device_id}/acks``: seqs of one epoch, as ranges."""

    device_id: str
    epoch: str
    seqs: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Outcome:
    """What a committed transaction did."""

    stored: int
    """Events new to the ledger, written to their tables."""
    duplicates: int
    """Events already in the ledger (or twice in this transaction): stored before, acknowledged again."""
    refused_events: tuple[Refusal, ...]
    """Events refused one by one (``invalid_event``); acknowledged, as they will never become valid."""
    acks: tuple[DeviceAck, ...]
    """Per device and epoch, every seq of the transaction's events: stored, duplicate or refused."""
