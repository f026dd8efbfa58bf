"""Events to and from the stored form.

A stored event's ``body`` is the compact JSON of its wire envelope (see
:class:`edge_protocol.wire.Envelope`), keys in the documented order, so the uplink and
``export`` hand it on without re-encoding.  The seq is only known inside the transaction
that commits the event, so an event is encoded ahead of it into the text before and after
the seq; the transaction only concatenates.  ``size`` is the UTF-8 byte length of the body.

JSON is the hot spot of an append (floats above all).  When ``orjson`` is installed it is
used (about six times faster both ways); otherwise the standard library's C encoder,
built once.  Both give compact JSON that parses to the same values; only the spelling of
huge or tiny floats may differ (``1e+16`` / ``1e16``), which is why ``size`` is always
measured on the body actually stored.  Either way a NaN or infinite value is refused, as
JSON has no form for it.
"""

from __future__ import annotations

import _json
import importlib
import json
import json.encoder
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from edge_agent.events import PRIORITY, NewEvent, StoredEvent
from edge_agent.outbox.schema import PRIORITY_LANE
from edge_protocol.wire import EventKind

LANE_CODE = {"priority": PRIORITY_LANE, "readings": 1}
"""How a lane is stored (an integer: the partial index ``events_priority`` is on ``lane = 0``)."""

_TEXT_MAX = 64
"""Longest boot id and sensor name the envelope accepts."""
_CACHED_MAX = 4096
_quote: Callable[[str], str] = getattr(_json, "encode_basestring", json.encoder.py_encode_basestring)


def _stdlib_backend() -> tuple[Callable[[Any], str], Callable[[str], Any]]:
    make_encoder = getattr(_json, "make_encoder", None)
    if make_encoder is None:
        return (
            json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode,
            json.JSONDecoder().decode,
        )
    # JSONEncoder.encode builds a C encoder per call; built once it is a third faster.  No
    # cycle check: a cyclic ``data`` ends in RecursionError, an error for that event alone.
    encoder = make_encoder(None, None, _quote, None, ":", ",", False, False, False)

    def dumps(value: Any) -> str:
        return "".join(encoder(value, 0))

    return dumps, json.JSONDecoder().decode


def _orjson_backend() -> tuple[Callable[[Any], str], Callable[[str], Any]] | None:
    try:
        orjson = importlib.import_module("orjson")
    except ImportError:
        return None
    orjson_dumps = orjson.dumps

    def dumps(value: Any) -> str:
        return str(orjson_dumps(value).decode())

    loads: Callable[[str], Any] = orjson.loads
    return dumps, loads


def _refuse_non_finite(values: Iterable[Any]) -> None:
    """orjson writes null for NaN and ±inf; the standard library refuses them.  Refuse here too."""
    for value in values:
        kind = type(value)
        if kind is float:
            if value - value != 0.0:  # true for NaN and ±inf only
                raise ValueError(f"Out of range float values are not JSON compliant: {value!r}")
        elif kind is dict:
            _refuse_non_finite(value.values())
        elif kind is list or kind is tuple:
            _refuse_non_finite(value)


BACKEND = "orjson"
_backend = _orjson_backend()
if _backend is None:
    BACKEND = "json"
    _backend = _stdlib_backend()
_dumps, _loads = _backend


def use_backend(name: str) -> None:
    """Switch the JSON backend (``"orjson"`` or ``"json"``); for tests and the benchmark."""
    global _dumps, _loads, BACKEND
    backend = _orjson_backend() if name == "orjson" else _stdlib_backend()
    if backend is None:
        raise ImportError("orjson is not installed")
    _dumps, _loads = backend
    BACKEND = name


@dataclass(slots=True)
class EncodedEvent:
    """A :class:`NewEvent` as JSON text waiting for its seq."""

    event: NewEvent
    lane: int
    head: str
    tail: str
    fixed_size: int
    """UTF-8 bytes of ``head`` + ``tail``; the body adds the digits of the seq."""
    unsynced: int
    """1 while ``ts`` awaits correction (see ``Outbox.correct_unsynced``)."""

    def body(self, seq: int) -> tuple[str, int]:
        digits = str(seq)
        return self.head + digits + self.tail, self.fixed_size + len(digits)


def encode(event: NewEvent, epoch: str) -> EncodedEvent:
    """Encode an event for ``epoch``; ``ValueError`` if it could never be a valid envelope.

    Only cheap checks run here (this is the hot path).  The envelope is assembled from
    text: the run of fields that one sensor's events share (epoch, boot, kind, sensor) is
    built and checked once and cached; ``id`` and ``ts`` are quoted; ``mono`` and ``data``
    are encoded together in ONE call to the JSON backend, as the array ``[mono,data]``,
    then cut at its first comma (a JSON number holds none).  Half the cost of encoding
    the whole envelope as a dict, and the same text (``tests/outbox/test_codec.py``).
    """
    key = (epoch, event.boot, event.kind, event.sensor)
    try:
        middle = _MIDDLE.get(key)
    except TypeError as exc:  # an unhashable field: certainly not a string
        raise ValueError(f"boot, kind and sensor must be strings: {exc}") from exc
    if middle is None:
        middle = _middle(key)
    clock = event.clock
    if clock == "synced":
        clock_field, unsynced = _SYNCED, 0
    elif clock == "unsynced":
        clock_field, unsynced = _UNSYNCED, 1
    else:
        raise ValueError(f"clock must be 'synced' or 'unsynced', not {clock!r}")
    mono = event.mono
    if type(mono) is not float:
        mono = _as_float(mono)
    if mono - mono != 0.0:  # true for NaN and ±inf only
        raise ValueError(f"mono must be a finite number, not {mono!r}")
    data = event.data
    if type(data) is not dict:
        raise ValueError(f"data must be a dict, not {type(data).__name__}")
    try:
        pair = _dumps([mono, data])
        head = '{"id":' + _quote(event.id) + ',"seq":'
        ts = _quote(event.ts)
    except TypeError as exc:
        raise ValueError(f"data has no JSON form, or id or ts is not a string: {exc}") from exc
    # orjson writes NaN and ±inf as null: only a text with a null is walked (the standard
    # library refuses them itself).
    if BACKEND == "orjson" and "null" in pair:
        _refuse_non_finite(data.values())
    comma = pair.index(",")
    tail = f'{middle}{ts}{clock_field}{pair[1:comma]},"data":{pair[comma + 1 : -1]}}}'
    size = len(head) + len(tail)
    if not (head.isascii() and tail.isascii()):
        size = len(head.encode()) + len(tail.encode())
    return EncodedEvent(event, PRIORITY[event.kind], head, tail, size, unsynced)


_SYNCED = ',"clock":"synced","mono":'
_UNSYNCED = ',"clock":"unsynced","mono":'
_MIDDLE: dict[tuple[str, str, str, str | None], str] = {}
"""``,"epoch":…,"sensor":…,"ts":`` per epoch/boot/kind/sensor (a few dozen in a daemon's life)."""


def _as_float(mono: object) -> float:
    """``mono`` given as an int (or bool): its float; anything else is refused."""
    if not isinstance(mono, int | float):
        raise ValueError(f"mono must be a number, not {type(mono).__name__}")
    try:
        return float(mono)
    except OverflowError as exc:
        raise ValueError(f"mono is out of range: {exc}") from exc


def _middle(key: tuple[str, str, str, str | None]) -> str:
    epoch, boot, kind, sensor = key
    if type(epoch) is not str or type(boot) is not str or type(kind) is not str:
        raise ValueError("epoch, boot and kind must be strings")
    if sensor is not None and type(sensor) is not str:
        raise ValueError(f"sensor must be a string or None, not {type(sensor).__name__}")
    if kind not in PRIORITY:
        raise ValueError(f"unknown event kind {kind!r}")
    if not 0 < len(boot) <= _TEXT_MAX:
        raise ValueError(f"boot id must be 1 to {_TEXT_MAX} characters")
    if sensor is not None and len(sensor) > _TEXT_MAX:
        raise ValueError(f"sensor name longer than {_TEXT_MAX} characters: {sensor!r}")
    text = (
        f',"epoch":{_quote(epoch)},"boot":{_quote(boot)},"kind":{_quote(kind)},'
        f'"sensor":{"null" if sensor is None else _quote(sensor)},"ts":'
    )
    if len(_MIDDLE) >= _CACHED_MAX:
        _MIDDLE.clear()
    _MIDDLE[key] = text
    return text


def envelope_of(event: NewEvent, seq: int, epoch: str) -> dict[str, Any]:
    """The wire envelope of an event just committed (the same dict ``decode`` gives back)."""
    return {
        "id": event.id,
        "seq": seq,
        "epoch": epoch,
        "boot": event.boot,
        "kind": event.kind,
        "sensor": event.sensor,
        "ts": event.ts,
        "clock": event.clock,
        "mono": float(event.mono),
        "data": event.data,
    }


def dumps(value: Any) -> str:
    """Compact JSON, as bodies are stored."""
    return _dumps(value)


def loads(text: str) -> Any:
    return _loads(text)


def decode(body: str, size: int) -> StoredEvent:
    """A stored row as an event (decodes the body once for its seq and kind)."""
    envelope: dict[str, Any] = _loads(body)
    return stored(envelope["seq"], envelope["kind"], body, size, envelope)


def stored(
    seq: int, kind: EventKind, body: str, size: int, envelope: dict[str, Any] | None = None
) -> StoredEvent:
    """A :class:`StoredEvent` from a row; ``envelope``, when at hand, spares a later decode."""
    event = StoredEvent(seq, kind, body, size)
    if envelope is not None:
        event.__dict__["envelope"] = envelope  # prime the cached property
    return event


def utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())
