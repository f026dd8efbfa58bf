"""One event envelope → the rows that store it; or a refusal of that event alone.

Pure functions.  Everything a database would refuse is refused here, event by event,
before any statement runs: a value that cannot go into its column must never make a whole
transaction fail (the messages would stay unacknowledged and come back for ever).  So:
readings must be finite numbers (``bool`` is not one) with a sensor; text must fit its
column and hold no NUL (PostgreSQL's text and jsonb refuse it); integers must fit a
BIGINT; ``data`` stored as JSON must be JSON (no NaN or infinity, which pydantic's parser
lets through); ``ts`` must be a time with a zone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple

from edge_protocol.wire import EnvelopeDict

_isfinite = math.isfinite

BIGINT_MAX = 2**63 - 1
TEST_STATUSES = frozenset({"pass", "fail", "error"})
_JSON_DEPTH_MAX = 64

EventKey = tuple[str, str]
"""``(device_id, id)``: the ledger's key."""

SeriesKey = tuple[str, str, str]
"""``(device_id, sensor, quantity)``: what a ``series`` row stands for."""

LEDGER_COLUMNS = ("device_id", "id", "epoch", "seq", "kind", "received_at")
"""``tables.event_ids``'s columns, in the order of a ledger row."""
LedgerRow = tuple[str, str, str, int, str, datetime]

READING_COLUMNS = ("series_id", "ts", "value", "event_id", "clock_synced", "cal")
"""``tables.readings``'s columns, in the order of a stored row."""
ReadingRow = tuple[str, str, datetime, float, str, bool, int | None]
"""A reading row before its series has an id: ``(sensor, quantity, ts, value, event_id,
clock_synced, cal)``; its device is the event's.  The store makes it the stored row,
``(series_id, ts, value, event_id, clock_synced, cal)``, inside the transaction."""


class EventRefused(ValueError):
    """This event cannot be stored (the rest of its batch can)."""


class EventRows(NamedTuple):
    """The rows of one event: its ledger row, and its rows in the table of its kind.

    Plain tuples of plain values inside (for readings): the garbage collector stops tracking
    them at its first look, leaving one object per event in its view (it was nine).  The
    consumer holds a hundred thousand events at a time between decoding and commit, and
    scanning their objects again and again was a fifth of its CPU."""

    key: EventKey
    ledger: LedgerRow
    """In :data:`LEDGER_COLUMNS` order."""
    table: str
    """``readings``, ``test_results``, ``alarms``, ``status_events`` or ``gaps``."""
    rows: tuple[dict[str, Any], ...] = ()
    """Rows of the other tables."""
    readings: tuple[ReadingRow, ...] = ()
    """A reading's rows, one per quantity (the bulk path: COPY takes them once the series
    has an id)."""
    evicted: int = 0
    """Events a gap event reports evicted (added to ``devices.evicted_events``; not the
    ``exported`` ones)."""
    dropped: int = 0
    """Events a ``not_committed`` gap event reports never committed (``devices.dropped_events``)."""


def parse_ts(value: str) -> datetime:
    """RFC 3339 with a zone → an aware UTC datetime; ``EventRefused`` otherwise."""
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise EventRefused(f"ts {value[:40]!r} is not an RFC 3339 time") from None
    if ts.tzinfo is None:
        raise EventRefused(f"ts {value[:40]!r} has no time zone")
    return ts.astimezone(UTC)


def event_rows(device_id: str, event: EnvelopeDict, received_at: datetime) -> EventRows:
    """The rows storing ``event`` of ``device_id``; raises :class:`EventRefused`."""
    event_id = event["id"]
    epoch = event["epoch"]
    seq = event["seq"]
    sensor = event.get("sensor")
    _short_text("epoch", epoch)
    if sensor is not None:
        _short_text("sensor", sensor)
    if seq > BIGINT_MAX:
        raise EventRefused(f"seq {seq} is too large")
    ts = parse_ts(event["ts"])
    kind = event["kind"]
    key = (device_id, event_id)
    ledger = (device_id, event_id, epoch, seq, kind, received_at)
    data = event.get("data") or {}
    if kind == "reading":
        if sensor is None:
            raise EventRefused("a reading without a sensor")
        return EventRows(
            key, ledger, "readings", readings=_readings(data, sensor, ts, event_id, event["clock"])
        )
    common = {"device_id": device_id, "event_id": event_id, "ts": ts}
    evicted = 0
    if kind == "test_result":
        _json("data", data)
        status = data.get("status")
        if status not in TEST_STATUSES:
            raise EventRefused(f"test_result status {status!r} is not one of pass, fail, error")
        rows = [
            common
            | {
                "sensor": sensor,
                "test": _text("data.test", data.get("test"), 64),
                "kind": _text("data.kind", data.get("kind"), 32),
                "status": status,
                "trigger": _optional_text("data.trigger", data.get("trigger"), 16),
                "detail": _optional_text("data.detail", data.get("detail"), None),
                "data": data,
            }
        ]
    elif kind == "alarm":
        _json("data", data)
        rows = [common | {"sensor": sensor, "code": _text("data.code", data.get("code"), 64), "data": data}]
    elif kind == "status":
        _json("data", data)
        rows = [common | {"sensor": sensor, "event": _status_event(data), "data": data}]
    else:  # gap
        rows, evicted = _gaps(data, epoch, event_id, ts, device_id)
        if data.get("reason") == NOT_COMMITTED:
            return EventRows(key, ledger, _TABLE[kind], rows=tuple(rows), dropped=evicted)
        if data.get("reason") == EXPORTED:  # carried out in a file, on its way through an import
            return EventRows(key, ledger, _TABLE[kind], rows=tuple(rows))
    return EventRows(key, ledger, _TABLE[kind], rows=tuple(rows), evicted=evicted)


NOT_COMMITTED = "not_committed"
"""The gap reason of events a device made and could not commit: no seqs, a count only."""
EXPORTED = "exported"
"""The gap reason of events exported to a file (``buffer export --mark-exported``): their
ranges are kept (``GET /v1/devices/{id}/gaps`` shows them ``exported`` until imported),
never added to ``evicted_events``: they are not lost."""

_TABLE = {
    "reading": "readings",
    "test_result": "test_results",
    "alarm": "alarms",
    "status": "status_events",
    "gap": "gaps",
}


def _readings(
    data: Mapping[str, Any], sensor: str, ts: datetime, event_id: str, clock: str
) -> tuple[ReadingRow, ...]:
    cal = data.get("cal")
    if cal is not None:
        if not isinstance(cal, dict):
            raise EventRefused("data.cal is not an object")
        for quantity, cal_id in cal.items():
            if quantity == "cal" or quantity not in data:
                raise EventRefused(f"data.cal names {quantity[:64]!r}, which the reading does not hold")
            if type(cal_id) is not int or not 0 <= cal_id <= BIGINT_MAX:
                raise EventRefused(f"data.cal.{quantity[:64]}: {cal_id!r:.40} is not a calibration id")
    synced = clock == "synced"
    rows = []
    for quantity, value in data.items():
        if quantity == "cal":
            continue
        if _short_text_ok(quantity) is not None:
            _short_text("quantity", quantity)
        # The common case inline (a finite float): this runs for every value received.
        number = value if type(value) is float and _isfinite(value) else _number(quantity, value)
        rows.append((sensor, quantity, ts, number, event_id, synced, cal.get(quantity) if cal else None))
    return tuple(rows)


def _status_event(data: Mapping[str, Any]) -> str:
    """What a status event is about: ``data.event`` (``sensor_health``, ``config_reload``,
    ``calibration_changed``, ``outbox_quarantined``…), or for the daemon's own
    ``{"state": "started" | "stopping", "version", "sensors"}`` its state."""
    for key in ("event", "state"):
        value = data.get(key)
        if isinstance(value, str) and value:
            return _text(f"data.{key}", value, 64)
    return "status"


def _gaps(
    data: Mapping[str, Any], event_epoch: str, event_id: str, ts: datetime, device_id: str
) -> tuple[list[dict[str, Any]], int]:
    reason = _text("data.reason", data.get("reason"), 16)
    epoch = _text("data.epoch", data.get("epoch", event_epoch), 64)
    evicted = data.get("evicted")
    if not isinstance(evicted, list):
        raise EventRefused("data.evicted is not a list of [first, last] ranges")
    rows = []
    total = 0
    for pair in evicted:
        if not (isinstance(pair, list) and len(pair) == 2 and all(type(s) is int for s in pair)):
            raise EventRefused(f"data.evicted: {str(pair)[:40]} is not a [first, last] range")
        first, last = pair
        if not 1 <= first <= last <= BIGINT_MAX:
            raise EventRefused(f"data.evicted: [{first}, {last}] is not a range of seqs")
        total += last - first + 1
        rows.append(
            {
                "device_id": device_id,
                "epoch": epoch,
                "first_seq": first,
                "last_seq": last,
                "reason": reason,
                "event_id": event_id,
                "ts": ts,
            }
        )
    count = data.get("count")
    if type(count) is int and 0 <= count <= BIGINT_MAX:
        total = count  # the device's own figure, when it gives one
    return rows, total


def _number(name: str, value: object) -> float:
    if type(value) is float:
        if math.isfinite(value):
            return value
    elif type(value) is int:
        try:
            return float(value)
        except OverflowError:
            pass
    else:
        raise EventRefused(f"reading {name[:64]!r}: {str(value)[:40]!r} is not a number")
    raise EventRefused(f"reading {name[:64]!r}: {value!r:.40} is not finite")


def _text(name: str, value: object, limit: int | None) -> str:
    if not isinstance(value, str) or not value:
        raise EventRefused(f"{name} is missing or not a string")
    if limit is not None and len(value) > limit:
        raise EventRefused(f"{name} is longer than {limit} characters")
    if "\x00" in value:
        raise EventRefused(f"{name} holds a NUL character")
    return value


@lru_cache(maxsize=4096)
def _short_text_ok(value: str) -> str | None:
    """Why ``value`` cannot be a sensor, quantity or epoch (None: it can).  Cached: the same
    few names come in every event."""
    if not value:
        return "is empty"
    if len(value) > 64:
        return "is longer than 64 characters"
    if "\x00" in value:
        return "holds a NUL character"
    return None


def _short_text(name: str, value: str) -> None:
    problem = _short_text_ok(value)
    if problem is not None:
        raise EventRefused(f"{name} {value[:64]!r} {problem}")


def _optional_text(name: str, value: object, limit: int | None) -> str | None:
    return None if value is None else _text(name, value, limit)


def _json(name: str, value: object, depth: int = 0) -> None:
    """Refuse what JSON (and PostgreSQL's jsonb) cannot hold."""
    if depth > _JSON_DEPTH_MAX:
        raise EventRefused(f"{name} is nested too deeply")
    if isinstance(value, str):
        if "\x00" in value:
            raise EventRefused(f"{name} holds a NUL character")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise EventRefused(f"{name} holds a non-finite number")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _json(f"{name}.{str(key)[:32]}", key, depth + 1)
            _json(f"{name}.{str(key)[:32]}", item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _json(name, item, depth + 1)
