"""The window: batches cut and not yet confirmed, the seqs in them, and those to send again.

Every batch lives in an :class:`InFlight` record from the moment it is cut until all its
seqs are confirmed; the records are the window.  A seq belongs to at most one record, so
an ack names its batch through :meth:`Window.hits`, and a lane read after a reconnect can
leave out what is still in flight (:meth:`Window.holds`).  The pump takes from the resend
queue before cutting anything new.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from edge_agent.events import StoredEvent
from edge_agent.uplink.lanes import LaneName


@dataclass(eq=False)
class InFlight:
    """One batch from the moment it is cut until every seq in it is confirmed."""

    events: list[StoredEvent]
    lane: LaneName
    pending: set[int] = field(default_factory=set)
    """Seqs not confirmed yet."""
    future: asyncio.Future[None] | None = None
    """The PUBACK of the current send; None while the batch waits to be (re)sent."""
    pubacked: bool = False
    published_at: float = 0.0
    first_published_at: float = 0.0
    pubacked_at: float = 0.0
    sends: int = 0
    done: bool = False

    def __post_init__(self) -> None:
        self.pending = {e.seq for e in self.events}


class Window:
    """The records in flight (in the order they were cut) and the queue of those to resend."""

    def __init__(self, limit: int) -> None:
        self._records: dict[InFlight, None] = {}
        self._by_seq: dict[int, InFlight] = {}
        self._resend: deque[InFlight] = deque()
        self.limit = limit
        """Most batches unconfirmed at once: ``inflight_batches``, narrowed per session."""
        self.pause_until = 0.0
        """Clock time before which the pump sends nothing (after a rejected publish)."""

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[InFlight]:
        return iter(self._records)

    @property
    def full(self) -> bool:
        return len(self._records) >= self.limit

    def holds(self, seq: int) -> bool:
        """Is ``seq`` in a batch cut and not yet confirmed?"""
        return seq in self._by_seq

    def highest_seq(self) -> int:
        """The highest seq in flight, 0 when none is."""
        return max(self._by_seq, default=0)

    def track(self, rec: InFlight) -> None:
        self._records[rec] = None
        for e in rec.events:
            self._by_seq[e.seq] = rec

    def take(self, rec: InFlight, seqs: set[int]) -> set[int]:
        """Mark the seqs of ``seqs`` that ``rec`` still waits for as confirmed; returns them."""
        seqs &= rec.pending
        if not seqs:
            return seqs
        rec.pending -= seqs
        for s in seqs:
            self._by_seq.pop(s, None)
        return seqs

    def retire(self, rec: InFlight) -> None:
        """``rec`` is wholly confirmed: it leaves the window."""
        rec.done = True
        self._records.pop(rec, None)

    def hits(self, ranges: Iterable[tuple[int, int]]) -> dict[InFlight, set[int]]:
        """The seqs in flight that inclusive ``[first, last]`` ranges name, by record."""
        hits: dict[InFlight, set[int]] = {}
        by_seq = self._by_seq
        for first, last in ranges:
            # Walk whichever is shorter: the range, or what is in flight.
            if last - first < len(by_seq):
                for s in range(first, last + 1):
                    if (rec := by_seq.get(s)) is not None:
                        hits.setdefault(rec, set()).add(s)
            else:
                for s, rec in by_seq.items():
                    if first <= s <= last:
                        hits.setdefault(rec, set()).add(s)
        return hits

    # -- sending again --------------------------------------------------------------------

    def next_resend(self) -> InFlight | None:
        return self._resend.popleft() if self._resend else None

    def resend_later(self, rec: InFlight) -> None:
        """Queue ``rec`` to go again after those already queued."""
        self._resend.append(rec)

    def resend_first(self, rec: InFlight) -> None:
        """Queue ``rec`` to go again before anything else."""
        self._resend.appendleft(rec)

    def new_session(self, inflight_batches: int, receive_maximum: int | None) -> None:
        """A new connection: its window size, and everything not confirmed goes again, first."""
        self.limit = inflight_batches
        if receive_maximum:
            # Leave room for the status messages within the broker's Receive Maximum.
            self.limit = max(1, min(self.limit, receive_maximum - 2))
        self._resend = deque(r for r in self._records if not r.done)
        for rec in self._resend:
            rec.future = None
            rec.pubacked = False
        self.pause_until = 0.0
