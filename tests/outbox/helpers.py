"""Shared bits of the outbox tests: events, an injectable clock, opening an outbox."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge_agent.events import NewEvent, StoredEvent
from edge_agent.outbox import Outbox
from edge_protocol.wire import Envelope

BOOT = "0b5e7c1a-5d39-4c55-a8f6-3f1d2c7b9e10"
BIG = 10**12


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def reading(i: int = 0, sensor: str = "climate", **kw: Any) -> NewEvent:
    return NewEvent.now("reading", sensor, {"value": float(i), "i": i}, boot=BOOT, **kw)


def alarm(i: int = 0, **kw: Any) -> NewEvent:
    return NewEvent.now("alarm", "climate", {"over": "temperature", "i": i}, boot=BOOT, **kw)


async def open_outbox(path: Path, **kw: Any) -> Outbox:
    kw.setdefault("max_bytes", BIG)
    kw.setdefault("max_age_s", BIG)
    kw.setdefault("boot", BOOT)
    return await Outbox.open(path, **kw)


def check_wire(event: StoredEvent) -> Envelope:
    """The stored envelope is exactly the wire form, and ``size`` is its compact JSON length."""
    envelope = Envelope.model_validate(event.envelope)
    assert set(event.envelope) == set(Envelope.model_fields)
    assert event.size == len(json.dumps(event.envelope, separators=(",", ":"), ensure_ascii=False).encode())
    assert envelope.seq == event.seq and envelope.kind == event.kind
    return envelope


def seqs(events: list[StoredEvent]) -> list[int]:
    return [e.seq for e in events]
