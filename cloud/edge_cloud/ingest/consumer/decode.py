"""A received message → what the store takes: a validated batch, a status, or a refusal.

Pure apart from the optional device check.  Refusal reasons (``store.model.RefusalReason``):
a payload larger than ``consumer.max_payload_bytes`` as received or once decompressed
(a zlib bomb stops at the limit: ``edge_protocol.wire.inflate`` never inflates
further) is ``oversized``; not JSON, not zlib, an unknown ``content-encoding``, not a
batch, or a topic naming no valid device is ``malformed``; a ``schema`` other than the
one the protocol module knows is ``schema``; a batch whose ``device_id`` is not the
topic's is ``spoofed``; with ``consumer.devices = "known"``, ``unknown_device`` /
``disabled_device``.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge_cloud.ingest.consumer.known_devices import Verdict
from edge_cloud.ingest.store.model import EventsMessage, Refusal, RefusalReason, StatusMessage
from edge_cloud.ingest.store.prepare import QUARANTINE_HEAD_BYTES
from edge_cloud.ingest.store.rows import EventRefused, parse_ts
from edge_protocol.wire import ZLIB, decode_batch_dict, device_of_topic

Item = EventsMessage | StatusMessage | Refusal
STATUS_MAX_BYTES = 64 * 1024
_ENCODINGS = (None, "", "identity", ZLIB)


class StatusPayload(BaseModel):
    """A birth ``{"state": "online", "ts", "boot", "epoch", "pending"}`` or a will (no ``ts``,
    no ``pending``); devices older than ``pending`` do not send it."""

    model_config = ConfigDict(extra="ignore")

    state: Literal["online", "offline"]
    ts: str | None = None
    boot: str | None = Field(None, min_length=1, max_length=64)
    epoch: str | None = Field(None, min_length=1, max_length=64)
    pending: int | None = Field(
        None, ge=0, le=2**62, description="Events the device's outbox holds unconfirmed"
    )


def decode(
    topic: str,
    payload: bytes,
    *,
    content_encoding: str | None,
    received_at: float,
    retained: bool,
    max_bytes: int,
    check_device: Callable[[str], Verdict] | None = None,
) -> Item | None:
    """What ``payload`` on ``topic`` is; None for a message to acknowledge and forget (an
    empty retained status: a status topic being cleared)."""
    at = datetime.fromtimestamp(received_at, UTC)

    def refused(reason: RefusalReason, detail: str, device_id: str | None) -> Refusal:
        return Refusal(reason, detail, topic, device_id, len(payload), payload[:QUARANTINE_HEAD_BYTES], at)

    device_id = device_of_topic(topic)
    parts = topic.split("/")
    if device_id is None or len(parts) != 3 or parts[2] not in ("events", "status"):
        return refused("malformed", "the topic names no valid device", None)
    if check_device is not None:
        verdict = check_device(device_id)
        if verdict == "unknown":
            return refused("unknown_device", f"the auth service does not know {device_id}", device_id)
        if verdict == "disabled":
            return refused("disabled_device", f"{device_id} is not enabled in the auth service", device_id)
    if parts[2] == "status":
        return _status(payload, device_id, at, retained, refused)
    if len(payload) > max_bytes:
        return refused("oversized", f"payload of {len(payload)} bytes exceeds {max_bytes}", device_id)
    if content_encoding not in _ENCODINGS:
        return refused("malformed", f"unknown content-encoding {content_encoding!r}", device_id)
    try:
        batch = decode_batch_dict(payload, content_encoding, max_bytes=max_bytes)
    except zlib.error as exc:
        return refused("malformed", f"not zlib data: {exc}", device_id)
    except ValidationError as exc:
        return _invalid(exc, refused, device_id)
    except ValueError as exc:  # the size limit, after decompression
        return refused("oversized", str(exc), device_id)
    if batch["device_id"] != device_id:
        return refused("spoofed", f"batch for {batch['device_id']!r} published on {topic!r}", device_id)
    return EventsMessage(device_id, batch["events"], at)


def _invalid(
    exc: ValidationError, refused: Callable[[RefusalReason, str, str | None], Refusal], device_id: str
) -> Refusal:
    if any(e["loc"][:1] == ("schema",) for e in exc.errors(include_url=False)):
        return refused("schema", "unknown batch schema (this ingest knows schema 1)", device_id)
    return refused("malformed", f"not a batch: {first_error(exc)}", device_id)


def first_error(exc: ValidationError) -> str:
    """``3 problem(s), first: events.0.seq: Input should be greater than or equal to 1``."""
    errors = exc.errors(include_url=False)
    if not errors:
        return str(exc)
    where = ".".join(str(p) for p in errors[0]["loc"])
    return f"{len(errors)} problem(s), first: {where + ': ' if where else ''}{errors[0]['msg']}"


def _status(
    payload: bytes,
    device_id: str,
    at: datetime,
    retained: bool,
    refused: Callable[[RefusalReason, str, str | None], Refusal],
) -> Item | None:
    if not payload:
        return None
    if len(payload) > STATUS_MAX_BYTES:
        return refused("oversized", f"status of {len(payload)} bytes exceeds {STATUS_MAX_BYTES}", device_id)
    try:
        status = StatusPayload.model_validate_json(payload)
        ts = parse_ts(status.ts) if status.ts is not None else None
    except ValidationError as exc:
        return refused("malformed", f"not a status: {first_error(exc)}", device_id)
    except EventRefused as exc:
        return refused("malformed", f"not a status: {exc}", device_id)
    for value in (status.boot, status.epoch):
        if value is not None and "\x00" in value:
            return refused("malformed", "not a status: a NUL character", device_id)
    return StatusMessage(
        device_id, status.state == "online", ts, status.boot, status.epoch, at, retained, status.pending
    )
