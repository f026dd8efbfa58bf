"""Events as the daemon makes them, and as the outbox hands them back.

A :class:`NewEvent` is built by whoever produced it (the sampler for readings, sensor
tests for results and alarms, the daemon for status); the outbox gives it its ``seq``
and ``epoch`` in the transaction that commits it and returns a :class:`StoredEvent`,
whose ``envelope`` is the wire form described in :mod:`edge_protocol.wire`.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from edge_protocol.wire import ClockState, EventKind, rfc3339_ms, uuid7

Lane = Literal["priority", "readings"]
"""Alarms, test results, gaps and status events leave before bulk readings."""

PRIORITY: dict[EventKind, int] = {"alarm": 0, "gap": 0, "test_result": 0, "status": 0, "reading": 1}


def lane_of(kind: EventKind) -> Lane:
    return "readings" if PRIORITY[kind] else "priority"


@dataclass(frozen=True)
class NewEvent:
    """An event not yet committed: no seq, no epoch."""

    kind: EventKind
    sensor: str | None
    data: dict[str, Any]
    ts: str
    """RFC 3339 UTC with milliseconds, from the wall clock when the event was made."""
    clock: ClockState
    mono: float
    """``time.monotonic()`` when the event was made (boot-relative), to fix ``ts`` later."""
    boot: str
    id: str = field(default_factory=uuid7)

    @property
    def priority(self) -> int:
        return PRIORITY[self.kind]

    @classmethod
    def now(
        cls,
        kind: EventKind,
        sensor: str | None,
        data: dict[str, Any],
        *,
        boot: str,
        clock: ClockState = "synced",
        wall: float | None = None,
        mono: float | None = None,
    ) -> NewEvent:
        wall = time.time() if wall is None else wall
        return cls(
            kind=kind,
            sensor=sensor,
            data=data,
            ts=rfc3339_ms(datetime.fromtimestamp(wall, UTC)),
            clock=clock,
            mono=time.monotonic() if mono is None else mono,
            boot=boot,
            id=uuid7(int(wall * 1000)),
        )


@dataclass
class StoredEvent:
    """A committed event: what the uplink publishes and the outbox deletes once acknowledged.

    Not frozen, though nothing changes one: a frozen dataclass is built four times slower,
    and one is built per event on every append and every fetch.
    """

    seq: int
    kind: EventKind
    body: str
    """The envelope as compact JSON text, exactly as stored and as it goes on the wire
    (the uplink joins bodies into a batch instead of decoding and encoding again)."""
    size: int
    """UTF-8 bytes of ``body``: what it costs on the wire and in the cap."""

    @functools.cached_property
    def envelope(self) -> dict[str, Any]:
        """The wire form as a dict (see :class:`edge_protocol.wire.Envelope`), decoded on demand."""
        decoded: dict[str, Any] = json.loads(self.body)
        return decoded

    @property
    def lane(self) -> Lane:
        return lane_of(self.kind)
