"""Reading the outbox lane by lane, and cutting what is read into batches.

After each (re)connect the forwarder drains three lanes, always preferring the first
that has something:

1. ``priority`` — alarms, test results, gaps, status: all of them, in seq order;
2. ``live``     — readings committed since the connection came up (seq >= the outbox's
   ``next_seq`` at connect time), so fresh data is current on the dashboards at once;
3. ``backlog``  — the older readings, oldest first, at most ``backlog_rate`` events/s
   (:class:`TokenBucket`), so a fleet coming back after an outage does not knock over
   its broker.

A :class:`LaneReader` fetches a few batches' worth at a time (one outbox round trip per
several messages) and remembers when its lane was found empty, so an idle lane costs no
query until something that may belong to it is committed: the pump hands the priority
lane the outbox's ``priority_mark`` (moved by priority commits only) and the live lane
its ``next_seq``; the backlog, bounded by the seq at connect, once found empty never
looks again.  A device committing one reading a second so costs one lane query per
reading, not three.  Each batch it hands out is claimed
first (``OutboxAPI.claim``): events evicted since they were fetched are left out, and the
others can no longer be evicted until they are deleted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Literal

from edge_agent.events import Lane, StoredEvent
from edge_agent.uplink.outbox_api import OutboxAPI

LaneName = Literal["priority", "live", "backlog"]


class TokenBucket:
    """``rate`` tokens per second, at most ``capacity`` saved up."""

    def __init__(
        self, rate: float, capacity: float, *, clock: Callable[[], float], initial: float | None = None
    ) -> None:
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._tokens = capacity if initial is None else min(initial, capacity)
        self._at = clock()

    def available(self) -> float:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now
        return self._tokens

    def take(self, n: float) -> None:
        self.available()
        self._tokens -= n

    def seconds_until(self, n: float) -> float:
        return max(0.0, (n - self.available()) / self.rate)


def cut_batch(
    events: list[StoredEvent], start: int, *, max_events: int, max_bytes: int, overhead: int
) -> int:
    """End (exclusive) of the batch that begins at ``events[start]``: as many events as fit
    both limits.

    ``overhead`` is the JSON around the envelopes; each envelope after the first costs a
    comma.  An event larger than ``max_bytes`` on its own still goes, alone: it cannot be
    split, and holding it back would block its lane forever.
    """
    end = min(len(events), start + max_events)
    if end <= start:
        return start
    # The common case, in one pass at C speed: the whole slice fits.
    if overhead + sum([e.size for e in events[start:end]]) + (end - start - 1) <= max_bytes:
        return end
    size = overhead + events[start].size
    i = start + 1
    while i < end and size + 1 + events[i].size <= max_bytes:
        size += 1 + events[i].size
        i += 1
    return i


class LaneReader:
    """One lane of the outbox from a cursor onwards: seqs in ``(after_seq, before_seq)``.

    Reads ``prefetch`` events per query, and starts the next query in the background when
    half of them are gone, so publishing does not stall while SQLite reads.

    ``skip(seq)`` names events to leave out because they are already in flight or already
    acknowledged (a seq belongs to at most one in-flight batch): after a reconnect the
    readers start again from the oldest event while the last connection's batches are sent
    again.  Only seqs below ``skip_below`` can be such events, so newer ones are not checked.
    """

    def __init__(
        self,
        outbox: OutboxAPI,
        name: LaneName,
        *,
        after_seq: int = 0,
        before_seq: int | None = None,
        prefetch: int = 1000,
        skip: Callable[[int], bool] | None = None,
        skip_below: int = 0,
    ) -> None:
        self.name = name
        self.lane: Lane = "priority" if name == "priority" else "readings"
        self._outbox = outbox
        self.cursor = after_seq
        """Highest seq fetched so far."""
        self.before_seq = before_seq
        self._prefetch = prefetch
        self._skip = skip
        self._skip_below = skip_below if skip is not None else 0
        self._buffer: list[StoredEvent] = []
        self._pos = 0
        self._empty_at: int | None = None
        self._done = False
        """Bounded, and found empty once every seq below its bound was committed: no later
        commit can add to it (new seqs only grow), so it never needs a query again."""
        self._ahead: asyncio.Task[tuple[list[StoredEvent], int]] | None = None
        self._read_at = 0
        """The outbox's ``eviction_mark`` before the oldest fetch still in the buffer."""
        self._ahead_mark = 0

    def exhausted(self, mark: int) -> bool:
        """Known to hold nothing more, given that the outbox's ``next_seq`` is still ``mark``."""
        return (
            self._pos >= len(self._buffer) and self._ahead is None and (self._done or self._empty_at == mark)
        )

    def forget_empty(self) -> None:
        self._empty_at = None

    def close(self) -> None:
        """Drop a read-ahead in progress (the session is over)."""
        if self._ahead is not None:
            self._ahead.cancel()
            self._ahead.add_done_callback(_retrieve)
            self._ahead = None

    async def next_batch(
        self, mark: int, *, max_events: int, max_bytes: int, overhead: int
    ) -> list[StoredEvent]:
        """The next batch of this lane (possibly empty), claimed for sending.

        ``mark`` is the outbox's ``next_seq`` read *before* this call: if the lane is found
        empty, it stays known-empty until ``next_seq`` moves.  Events evicted since they
        were read ahead are left out (a gap event announces them); a batch that cannot be
        claimed (the outbox failed) is handed out again by the next call.
        """
        while True:
            while self._pos >= len(self._buffer):
                if self._ahead is not None:
                    ahead, self._ahead = self._ahead, None
                    (events, read_at), fetched_at = await ahead, self._ahead_mark
                elif self._done or self._empty_at == mark:
                    return []
                else:
                    (events, read_at), fetched_at = await self._fetch(), mark
                if not self._absorb(events, fetched_at, read_at) and self._empty_at == mark:
                    return []
            start = self._pos
            self._pos = cut_batch(
                self._buffer, start, max_events=max_events, max_bytes=max_bytes, overhead=overhead
            )
            if (
                self._ahead is None
                and len(self._buffer) - self._pos < self._prefetch // 2
                and self._empty_at != mark
            ):
                self._ahead_mark = mark
                self._ahead = asyncio.ensure_future(self._fetch())
            batch = self._buffer[start : self._pos]
            try:
                kept = await self._outbox.claim([e.seq for e in batch], read_at=self._read_at)
            except BaseException:
                self._pos = start
                raise
            if len(kept) < len(batch):
                batch = [e for e in batch if e.seq in kept]
            if batch:
                return batch

    async def _fetch(self) -> tuple[list[StoredEvent], int]:
        """The next events of the lane, and the outbox's ``eviction_mark`` from before the query."""
        read_at = self._outbox.eviction_mark
        events = await self._outbox.fetch(
            self.lane, after_seq=self.cursor, before_seq=self.before_seq, limit=self._prefetch
        )
        return events, read_at

    def _absorb(self, events: list[StoredEvent], fetched_at: int, read_at: int) -> bool:
        """Append what a query returned; False when it returned nothing."""
        if len(events) < self._prefetch:
            self._empty_at = fetched_at
            # The backlog at 1 Hz per device would otherwise cost a query per commit.
            self._done = self.before_seq is not None and fetched_at >= self.before_seq
        if not events:
            return False
        self.cursor = events[-1].seq
        if self._skip is not None and events[0].seq < self._skip_below:
            skip = self._skip
            events = [e for e in events if not skip(e.seq)]
        # Marks only grow: the buffer is as old as its oldest fetch.
        self._read_at = read_at if self._pos >= len(self._buffer) else min(self._read_at, read_at)
        self._buffer = self._buffer[self._pos :] + events
        self._pos = 0
        return True


def _retrieve(task: asyncio.Task[tuple[list[StoredEvent], int]]) -> None:
    if not task.cancelled():
        task.exception()
