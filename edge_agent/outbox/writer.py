"""Group commit: many producers, one transaction per batch, the next batch prepared during the fsync.

Each producer awaits :meth:`OutboxWriter.submit`, which resolves once its event is
COMMITTED (with its seq).  :meth:`OutboxWriter.run` takes everything queued, up to
``max_batch``, and appends it in one transaction; while that transaction commits, the
next batch gathers.  So the cost of an fsync is shared by every event that arrived during
the previous one, and a single producer still gets its event committed without waiting
for a timer.

Pipelined: a transaction has a CPU phase (SQLite inserting the rows, which needs the GIL
for every row it binds) and an I/O phase (COMMIT: writing and fsyncing the WAL, which
holds no GIL).  The writer encodes the NEXT batch to JSON during the I/O phase of the
current one, and stays out of the way during its CPU phase: Python work on the event
loop while SQLite binds rows on aiosqlite's thread makes both wait for the GIL (measured:
executemany falls from 330,000 to 7,000 rows/s next to a busy encoder).  So ``submit``
only queues; the writer encodes.  An event that has no valid wire form fails its own
submission (``ValueError``), alone.

``submit_many`` hands over several events for one wait (a sampling tick of many sensors):
they are committed together, never split across transactions.  A producer cancelled while
waiting does not un-submit: its event is committed all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence

from edge_agent.events import NewEvent, StoredEvent
from edge_agent.outbox.codec import EncodedEvent
from edge_agent.outbox.errors import OutboxClosedError, OutboxError
from edge_agent.outbox.store import Outbox

log = logging.getLogger("edge_agent.outbox")

_Entry = tuple[list[NewEvent], "asyncio.Future[list[StoredEvent]]"]
"""One submission: its events and the future its producer waits on."""
_Ready = list[tuple[list[EncodedEvent], "asyncio.Future[list[StoredEvent]]"]]
"""A batch taken from the queue and encoded, waiting for its transaction."""


class OutboxWriter:
    def __init__(self, outbox: Outbox, *, max_batch: int = 1000) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._outbox = outbox
        self._max_batch = max_batch
        self._queue: deque[_Entry] = deque()
        self._queued = 0
        self._wake = asyncio.Event()
        self._stopping = False
        self._running = False
        self._finished = asyncio.Event()
        self._in_flight: asyncio.Task[list[StoredEvent]] | None = None
        """The transaction being committed (kept referenced while shielded)."""
        self.batches = 0
        """Transactions this writer has committed."""
        self.dropped = 0
        """Events refused by :meth:`submit_or_drop` (not committed, never promised)."""
        self._drop_problem: str | None = None

    @property
    def queued(self) -> int:
        """Events waiting for a transaction."""
        return self._queued

    async def submit(self, event: NewEvent) -> StoredEvent:
        """Queue ``event``; returns it as stored once committed.

        ``ValueError`` if the event has no valid wire form; the outbox's errors
        (:class:`OutboxFullError`, …) if its batch could not be committed;
        :class:`OutboxClosedError` after :meth:`stop`.
        """
        return (await self._enqueue([event]))[0]

    async def submit_or_drop(self, event: NewEvent) -> StoredEvent | None:
        """:meth:`submit` for a producer that must go on whatever the storage does (a
        sensor's sampling loop): an event that could not be committed was never promised,
        so it is counted in ``dropped`` and logged (once per series of the same failure),
        and None is returned instead of raising."""
        try:
            stored = await self.submit(event)
        except (OutboxError, ValueError) as exc:
            self.dropped += 1
            problem = f"{type(exc).__name__}: {exc}"
            if problem != self._drop_problem:
                log.error(
                    "event not committed, sampling goes on (%d dropped so far): %s", self.dropped, problem
                )
                self._drop_problem = problem
            return None
        if self._drop_problem is not None:
            log.info("events are committed again (%d were dropped)", self.dropped)
            self._drop_problem = None
        return stored

    async def submit_many(self, events: Sequence[NewEvent]) -> list[StoredEvent]:
        """Queue several events (a sampling tick of many sensors): committed together, in
        order, in the same transaction (never split), for the price of one wait.  One
        invalid event refuses the whole submission (``ValueError``)."""
        return await self._enqueue(list(events)) if events else []

    def _enqueue(self, events: list[NewEvent]) -> asyncio.Future[list[StoredEvent]]:
        if self._stopping:
            raise OutboxClosedError("the outbox writer is stopped")
        future: asyncio.Future[list[StoredEvent]] = asyncio.get_running_loop().create_future()
        self._queue.append((events, future))
        self._queued += len(events)
        self._wake.set()
        return future

    async def run(self) -> None:
        """Drain the queue, one transaction per drained batch, until :meth:`stop`."""
        if self._running:
            raise RuntimeError("OutboxWriter.run is already running")
        self._running = True
        ready: _Ready = []
        try:
            while True:
                if not ready:
                    if not self._queue:
                        if self._stopping:
                            return
                        self._wake.clear()
                        await self._wake.wait()
                        continue
                    ready = self._take()
                    continue  # every submission of it may have been invalid
                ready = await self._commit(ready)
                # Let the producers just resolved run now, not during the next
                # transaction's inserts (GIL), and join the batch after it.
                await asyncio.sleep(0)
        finally:
            self._running = False
            self._stopping = True  # ended (stopped or cancelled): later submits must not hang
            closed = OutboxClosedError("the outbox writer stopped before committing this event")
            for _, future in ready:
                if not future.done():
                    future.set_exception(closed)
            self._fail_queued(closed)
            self._finished.set()

    async def stop(self) -> None:
        """Commit what is queued, then end :meth:`run` (or drain here if it is not running)."""
        self._stopping = True
        self._wake.set()
        if self._running:
            await self._finished.wait()
        else:
            ready: _Ready = []
            while ready or self._queue:
                ready = await self._commit(ready or self._take())

    def _take(self) -> _Ready:
        """Take up to ``max_batch`` events (whole submissions) off the queue, and encode them."""
        batch = [self._queue.popleft()]
        n = len(batch[0][0])
        while self._queue and n + len(self._queue[0][0]) <= self._max_batch:
            batch.append(self._queue.popleft())
            n += len(batch[-1][0])
        self._queued -= n
        encode = self._outbox.encode
        ready: _Ready = []
        for events, future in batch:
            try:
                ready.append(([encode(event) for event in events], future))
            except ValueError as exc:  # this submission fails alone
                if not future.done():
                    future.set_exception(exc)
        return ready

    async def _commit(self, batch: _Ready) -> _Ready:
        """Commit ``batch`` in one transaction; returns the next batch, encoded meanwhile."""
        if not batch:
            return []
        committing = asyncio.Event()
        # Shielded: a cancelled run() still learns the outcome and resolves the producers.
        self._in_flight = append = asyncio.create_task(
            self._outbox.append_encoded(
                [encoded for events, _ in batch for encoded in events], committing=committing
            )
        )
        upcoming: _Ready = []
        try:
            flushing = asyncio.create_task(committing.wait())
            try:
                await asyncio.wait((append, flushing), return_when=asyncio.FIRST_COMPLETED)
            finally:
                flushing.cancel()
            if not append.done() and self._queue:
                upcoming = self._take()  # while the WAL is written and fsynced (no GIL needed)
            await asyncio.shield(append)
        except asyncio.CancelledError:
            with contextlib.suppress(BaseException):
                await append
            self._resolve(batch, append)
            self._requeue(upcoming)
            raise
        except Exception:
            pass  # handed to the producers below
        self._resolve(batch, append)
        return upcoming

    def _requeue(self, ready: _Ready) -> None:
        """Put an encoded batch back at the head of the queue (its events are still valid)."""
        for encoded, future in reversed(ready):
            events = [e.event for e in encoded]
            self._queue.appendleft((events, future))
            self._queued += len(events)

    def _resolve(self, batch: _Ready, append: asyncio.Future[list[StoredEvent]]) -> None:
        error: BaseException | None
        if not append.done() or append.cancelled():
            error = OutboxClosedError("the outbox writer was cancelled before this event was committed")
        else:
            error = append.exception()
        if error is None:
            self.batches += 1
            stored = append.result()
            start = 0
            for entry, future in batch:
                end = start + len(entry)
                if not future.done():
                    future.set_result(stored[start:end])
                start = end
            return
        log.error("outbox append of %d events failed: %s", sum(len(e) for e, _ in batch), error)
        for _, future in batch:
            if not future.done():
                future.set_exception(error)

    def _fail_queued(self, error: BaseException) -> None:
        self._queued = 0
        while self._queue:
            _, future = self._queue.popleft()
            if not future.done():
                future.set_exception(error)
