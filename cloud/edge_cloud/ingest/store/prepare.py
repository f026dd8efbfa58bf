"""A :class:`~edge_cloud.ingest.store.model.Work` turned into rows, before the transaction.

Pure: every event becomes its rows or a refusal of its own; an event twice in the same
work (a resend that arrived while the first copy waited for its transaction) is kept
once; every seq is noted for the acknowledgement, whatever became of its event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from edge_cloud.ingest.store.model import EventsMessage, Refusal, RefusedEvent, Work
from edge_cloud.ingest.store.rows import EventKey, EventRows
from edge_protocol.wire import EnvelopeDict, events_topic

QUARANTINE_HEAD_BYTES = 256
"""How much of a refused payload (or event) the quarantine keeps."""


@dataclass
class Prepared:
    events: list[EventRows] = field(default_factory=list)
    """One per distinct ``(device_id, id)``, in arrival order."""
    repeated: int = 0
    """Events seen a second time within the work."""
    refused: list[Refusal] = field(default_factory=list)
    """Events refused one by one."""
    seqs: dict[tuple[str, str], set[int]] = field(default_factory=dict)
    """``(device_id, epoch)`` → every seq of the work's events: what to acknowledge and
    to note as received."""
    seen: dict[str, datetime] = field(default_factory=dict)
    """Device → latest receive time of its event messages."""


def prepare(work: Work) -> Prepared:
    out = Prepared()
    keys: set[EventKey] = set()
    for message in work.events:
        _note_device(out, message)
        for event, rows in zip(message.events, message.converted, strict=True):
            out.seqs.setdefault((message.device_id, event["epoch"]), set()).add(event["seq"])
            key = (message.device_id, event["id"])
            if key in keys:
                out.repeated += 1
            elif isinstance(rows, RefusedEvent):
                out.refused.append(_refusal(message, event, rows.detail))
            else:
                keys.add(key)
                out.events.append(rows)
    return out


def _note_device(out: Prepared, message: EventsMessage) -> None:
    latest = out.seen.get(message.device_id)
    if latest is None or message.received_at > latest:
        out.seen[message.device_id] = message.received_at


def _refusal(message: EventsMessage, event: EnvelopeDict, detail: str) -> Refusal:
    body = json.dumps(event, separators=(",", ":"), ensure_ascii=False, default=str)
    raw = body.encode("utf-8", "replace")
    return Refusal(
        reason="invalid_event",
        detail=f"event {event['id']} (seq {event['seq']}): {detail}",
        topic=message.source or events_topic(message.device_id),
        device_id=message.device_id,
        size=len(raw),
        head=raw[:QUARANTINE_HEAD_BYTES],
        received_at=message.received_at,
        events=1,
    )
