"""The wire contract between a device and everything that subscribes to it.

This is the one module the cloud side shares with the device (see docs/PROTOCOL.md for
the prose version).  Topics::

    devices/{device_id}/events      device → cloud   batches of event envelopes (QoS 1)
    devices/{device_id}/status      device → cloud   retained birth {"state": "online"}; last will "offline"
    devices/{device_id}/acks        cloud → device   {"epoch": …, "seqs": [[first, last], …]} stored ranges
    devices/{device_id}/commands/…  cloud → device   remote commands (MQTT v5 response topic)
    devices/{device_id}/responses…  device → cloud   command replies (on the request's response topic)

An event envelope::

    {"id": UUIDv7, "seq": int, "epoch": str, "boot": str, "kind": "reading" | "test_result" |
     "alarm" | "status" | "gap", "sensor": str | null, "ts": RFC 3339 UTC with ms,
     "clock": "synced" | "unsynced", "mono": float (boot-relative monotonic seconds), "data": {…}}

A message on ``…/events`` is ``{"schema": 1, "device_id": …, "events": [envelope, …]}``
as UTF-8 JSON, optionally zlib-compressed, in which case the MQTT v5 user property
``content-encoding`` is ``zlib``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import time
import uuid
import zlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, with_config
from typing_extensions import TypedDict  # pydantic needs its TypedDict before Python 3.12

SCHEMA_VERSION = 1
CONTENT_ENCODING_PROPERTY = "content-encoding"
ZLIB = "zlib"

EventKind = Literal["reading", "test_result", "alarm", "status", "gap"]
AlarmState = Literal["raised", "reminder", "cleared"]
"""An alarm's life cycle: raised once, reminded while it lasts, cleared when it is over."""
ALARM_STATES: tuple[AlarmState, ...] = ("raised", "reminder", "cleared")
ALARM_CODES = ("sensor_test_failed", "sensor_failed")
"""Codes the device sends: a failing sensor test (with ``alarm = true``); a sensor whose
circuit breaker stays open (or that cannot be opened) longer than ``[alarms] sensor_failed_after``."""
ClockState = Literal["synced", "unsynced"]
Compression = Literal["none", "zlib"]

DEVICE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


def events_topic(device_id: str) -> str:
    return f"devices/{device_id}/events"


def status_topic(device_id: str) -> str:
    return f"devices/{device_id}/status"


def acks_topic(device_id: str) -> str:
    return f"devices/{device_id}/acks"


def command_topic(device_id: str, name: str) -> str:
    """Where the cloud sends command ``name`` (e.g. ``run-test``)."""
    return f"devices/{device_id}/commands/{name}"


def commands_filter(device_id: str) -> str:
    """What the device subscribes to for its commands."""
    return command_topic(device_id, "+")


def command_name(device_id: str, topic: str) -> str | None:
    """``devices/X/commands/ping`` → ``ping`` (None when the topic is not one of X's commands)."""
    prefix = command_topic(device_id, "")
    name = topic.removeprefix(prefix)
    if name == topic or not name or "/" in name:
        return None
    return name


def responses_topic(device_id: str) -> str:
    """Where error replies go when a request's response topic is missing or not allowed."""
    return f"devices/{device_id}/responses"


def device_of_topic(topic: str) -> str | None:
    """``devices/X/events`` → ``X`` (None when the topic is not under ``devices/``)."""
    parts = topic.split("/")
    if len(parts) >= 3 and parts[0] == "devices" and DEVICE_ID_PATTERN.fullmatch(parts[1]):
        return parts[1]
    return None


def uuid7(unix_ms: int | None = None) -> str:
    """A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then 74 random bits."""
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= secrets.randbits(12) << 64
    value |= 0b10 << 62
    value |= secrets.randbits(62)
    return str(uuid.UUID(int=value))


def rfc3339_ms(ts: datetime) -> str:
    """``2026-11-25T13:19:03.123Z``."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def boot_id() -> str:
    """The kernel's boot id (changes at every boot), or a per-process stand-in elsewhere."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return _FALLBACK_BOOT_ID


_FALLBACK_BOOT_ID = f"nonlinux-{os.getpid()}-{secrets.token_hex(8)}"


EventId = Annotated[
    str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
]
Seq = Annotated[int, Field(ge=1)]
Token = Annotated[str, Field(min_length=1, max_length=64)]
"""An epoch or boot id."""
SensorName = Annotated[str | None, Field(max_length=64)]
DeviceId = Annotated[str, Field(pattern=DEVICE_ID_PATTERN.pattern)]


class Envelope(BaseModel):
    """One event as it travels; validated by every subscriber."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: EventId
    seq: Seq
    epoch: Token
    boot: Token
    kind: EventKind
    sensor: SensorName = None
    ts: str
    clock: ClockState
    mono: float | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class Batch(BaseModel):
    """The payload of one message on ``devices/{id}/events``."""

    model_config = ConfigDict(extra="forbid")

    schema_: Literal[1] = Field(1, alias="schema")
    device_id: DeviceId
    events: list[Envelope] = Field(min_length=1)


@with_config(ConfigDict(extra="forbid"))
class EnvelopeDict(TypedDict):
    """:class:`Envelope` validated the same way into a plain dict (absent optional keys stay
    absent): a third less CPU than the model, for a subscriber that only reads it once."""

    id: EventId
    seq: Seq
    epoch: Token
    boot: Token
    kind: EventKind
    sensor: NotRequired[SensorName]
    ts: str
    clock: ClockState
    mono: NotRequired[float | None]
    data: NotRequired[dict[str, Any]]


@with_config(ConfigDict(extra="forbid"))
class BatchDict(TypedDict):
    """:class:`Batch` validated the same way into a plain dict."""

    schema: NotRequired[Literal[1]]
    device_id: DeviceId
    events: Annotated[list[EnvelopeDict], Field(min_length=1)]


class AlarmData(TypedDict):
    """``data`` of an ``alarm`` event.  Every event of one alarm carries its ``alarm_id``;
    ``cleared`` is ``true`` exactly when ``state`` is ``cleared`` (what a subscriber that
    predates ``state`` looks at).  Events of devices older than the life cycle have only
    ``code`` (and ``test``, ``kind``, ``detail``)."""

    code: str
    alarm_id: str
    state: AlarmState
    cleared: bool
    raised_at: str
    """RFC 3339 UTC, when the condition started (the same in every event of the alarm)."""
    reminders: int
    """Reminders sent before this event."""
    detail: str
    test: NotRequired[str]
    kind: NotRequired[str]


class CalibrationChanged(TypedDict):
    """``data`` of a ``status`` event (``sensor`` set) when a device starts applying a new
    correction to one quantity: ``corrected = gain · raw + offset`` for readings whose
    ``cal`` names this id.  ``uncertainty`` is the calibrated reading's expanded uncertainty
    (k = 2) in the quantity's unit; absent from older devices, null when not determined."""

    event: Literal["calibration_changed"]
    quantity: str
    action: Literal["calibrate", "reset", "rollback"]
    cal: int | None
    gain: float
    offset: float
    calibrated_at: float | None
    expires_at: float | None
    uncertainty: NotRequired[float | None]


ENVELOPE_DICT: TypeAdapter[EnvelopeDict] = TypeAdapter(EnvelopeDict)
BATCH_DICT: TypeAdapter[BatchDict] = TypeAdapter(BatchDict)


class Ack(BaseModel):
    """The ingest's confirmation on ``devices/{id}/acks``: seq ranges it has stored."""

    model_config = ConfigDict(extra="forbid")

    epoch: str
    seqs: list[tuple[int, int]]


def encode_batch(
    device_id: str, envelopes: Sequence[dict[str, Any]], compression: Compression = "none"
) -> bytes:
    """Serialise a batch of envelope dicts (already in wire form) to a payload."""
    raw = json.dumps(
        {"schema": SCHEMA_VERSION, "device_id": device_id, "events": list(envelopes)},
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    return zlib.compress(raw, 6) if compression == ZLIB else raw


def decode_batch(
    payload: bytes, content_encoding: str | None = None, *, max_bytes: int = 16 * 2**20
) -> Batch:
    """Parse and validate a payload; raises ``ValueError`` (pydantic's included) when bad."""
    return Batch.model_validate_json(inflate(payload, content_encoding, max_bytes=max_bytes))


def decode_batch_dict(
    payload: bytes, content_encoding: str | None = None, *, max_bytes: int = 16 * 2**20
) -> BatchDict:
    """:func:`decode_batch` into plain dicts (:class:`BatchDict`), refusing the same payloads."""
    return BATCH_DICT.validate_json(inflate(payload, content_encoding, max_bytes=max_bytes))


def inflate(payload: bytes, content_encoding: str | None = None, *, max_bytes: int = 16 * 2**20) -> bytes:
    """The payload's JSON: decompressed when ``zlib``, never beyond ``max_bytes`` (a
    decompression bomb stops there); raises ``ValueError``, or ``zlib.error``."""
    if content_encoding == ZLIB:
        d = zlib.decompressobj()
        payload = d.decompress(payload, max_bytes + 1)
        if len(payload) > max_bytes or d.unconsumed_tail:
            raise ValueError(f"decompressed payload exceeds {max_bytes} bytes")
    elif content_encoding not in (None, "", "identity"):
        raise ValueError(f"unknown content-encoding {content_encoding!r}")
    if len(payload) > max_bytes:
        raise ValueError(f"payload exceeds {max_bytes} bytes")
    return payload


def seq_ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """``[1, 2, 3, 7, 8]`` → ``[(1, 3), (7, 8)]``."""
    out: list[tuple[int, int]] = []
    for s in sorted(set(seqs)):
        if out and s == out[-1][1] + 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


RENEWAL_CONTEXT = "edge-auth renew"


def renewal_message(device_id: str, timestamp: int, csr_pem: str) -> bytes:
    """What a device signs with its *current* key to renew its certificate
    (``POST /v1/devices/{id}/renew``; see docs/CLOUD_AUTH.md)."""
    digest = hashlib.sha256(csr_pem.encode()).hexdigest()
    return f"{RENEWAL_CONTEXT}\n{device_id}\n{timestamp}\n{digest}".encode()
