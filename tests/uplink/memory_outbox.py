"""An in-memory outbox with the real one's uplink-facing API, for the uplink's tests and bench.

A test double of the *outbox* (not of MQTT): same methods and ordering guarantees as
``edge_agent.outbox.Outbox`` as far as the uplink sees them (``epoch``, ``next_seq``,
``fetch`` by lane in seq order, ``wait_for_events``, ``claim``, ``delete``,
``record_publish``), plus ``append`` to fill it.  Events are stored per lane in seq order;
deletions are lazy.  It has no caps, so nothing is ever evicted: ``claim`` only records.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import secrets
from collections.abc import Iterable, Sequence
from typing import Any

from edge_agent.events import Lane, NewEvent, StoredEvent, lane_of

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class MemoryOutbox:
    def __init__(self, epoch: str | None = None) -> None:
        self.epoch = epoch or secrets.token_hex(8)
        self._next = 1
        self._events: dict[int, StoredEvent] = {}
        self._lanes: dict[Lane, list[int]] = {"priority": [], "readings": []}
        self._committed = asyncio.Event()
        self.last_publish: float | None = None
        self.deleted: list[int] = []
        """Every seq ever deleted, in order (what the tests check)."""
        self.delete_calls = 0
        self.claimed: set[int] = set()
        """Seqs claimed for sending and not deleted yet."""
        self.priority_mark = 0

    @property
    def next_seq(self) -> int:
        return self._next

    @property
    def pending_count(self) -> int:
        return len(self._events)

    def pending_seqs(self) -> list[int]:
        return sorted(self._events)

    async def append(self, events: Sequence[NewEvent]) -> list[StoredEvent]:
        return self.append_now(events)

    def append_now(self, events: Sequence[NewEvent]) -> list[StoredEvent]:
        stored = []
        for e in events:
            seq = self._next
            self._next += 1
            envelope: dict[str, Any] = {
                "id": e.id,
                "seq": seq,
                "epoch": self.epoch,
                "boot": e.boot,
                "kind": e.kind,
                "sensor": e.sensor,
                "ts": e.ts,
                "clock": e.clock,
                "mono": e.mono,
                "data": e.data,
            }
            body = _encode(envelope)
            s = StoredEvent(seq=seq, kind=e.kind, body=body, size=len(body.encode()))
            self._events[seq] = s
            self._lanes[lane_of(e.kind)].append(seq)
            stored.append(s)
        if any(lane_of(s.kind) == "priority" for s in stored):
            self.priority_mark += 1
        if stored:
            self._committed.set()
            self._committed = asyncio.Event()
        return stored

    async def fetch(
        self, lane: Lane, *, after_seq: int = 0, before_seq: int | None = None, limit: int = 100
    ) -> list[StoredEvent]:
        seqs = self._lanes[lane]
        i = bisect.bisect_right(seqs, after_seq)
        out: list[StoredEvent] = []
        while i < len(seqs) and len(out) < limit:
            seq = seqs[i]
            if before_seq is not None and seq >= before_seq:
                break
            event = self._events.get(seq)
            if event is not None:
                out.append(event)
            i += 1
        return out

    async def wait_for_events(self, after_seq: int, timeout: float) -> bool:
        if self._next - 1 > after_seq:
            return True
        try:
            async with asyncio.timeout(timeout):
                await self._committed.wait()
        except TimeoutError:
            return False
        return True

    eviction_mark = 0
    """Nothing is ever evicted here."""

    async def claim(self, seqs: Iterable[int], *, read_at: int | None = None) -> set[int]:
        present = {seq for seq in seqs if seq in self._events}
        self.claimed |= present
        return present

    async def delete(self, seqs: Iterable[int]) -> int:
        self.delete_calls += 1
        n = 0
        for seq in seqs:
            self.claimed.discard(seq)
            if self._events.pop(seq, None) is not None:
                self.deleted.append(seq)
                n += 1
        return n

    async def record_publish(self, wall_time: float) -> None:
        self.last_publish = wall_time
