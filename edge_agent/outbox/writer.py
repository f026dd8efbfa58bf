"""Group commit: many producers, one transaction per batch.

Each producer awaits :meth:`OutboxWriter.submit`, which resolves once its event is
COMMITTED (with its seq).  :meth:`OutboxWriter.run` takes everything queued, up to
``max_batch``, and appends it in one transaction; while that transaction commits, the
next batch gathers.  So the cost of an fsync is shared by every event that arrived during
the previous one, and a single producer still gets its event committed without waiting
for a timer.

Events are encoded in ``submit`` (an invalid one fails there, alone), while the previous
batch commits.  ``submit_many`` hands over several events for one wait (a sampling tick
of many sensors): they are committed together, never split across transactions.  A producer cancelled while
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

_Entry = tuple[list[EncodedEvent], "asyncio.Future[list[StoredEvent]]"]
"""One submission: its encoded events and the future its producer waits on."""


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

    @property
    def committing(self) -> bool:
        """A transaction is running (for the watchdog: busy is not idle)."""
        return self._in_flight is not None and not self._in_flight.done()

    async def submit(self, event: NewEvent) -> StoredEvent:
        """Queue ``event``; returns it as stored once committed.

        ``ValueError`` if the event has no valid wire form; the outbox's errors
        (:class:`OutboxFullError`, …) if its batch could not be committed;
        :class:`OutboxClosedError` after :meth:`stop`.
        """
        return (await self._enqueue([self._outbox.encode(event)]))[0]

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
        encoded = [self._outbox.encode(event) for event in events]
        return await self._enqueue(encoded) if encoded else []

    def _enqueue(self, encoded: list[EncodedEvent]) -> asyncio.Future[list[StoredEvent]]:
        if self._stopping:
            raise OutboxClosedError("the outbox writer is stopped")
        future: asyncio.Future[list[StoredEvent]] = asyncio.get_running_loop().create_future()
        self._queue.append((encoded, future))
        self._queued += len(encoded)
        self._wake.set()
        return future

    async def run(self) -> None:
        """Drain the queue, one transaction per drained batch, until :meth:`stop`."""
        if self._running:
            raise RuntimeError("OutboxWriter.run is already running")
        self._running = True
        try:
            while True:
                if not self._queue:
                    if self._stopping:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                await self._commit_one_batch()
        finally:
            self._running = False
            self._stopping = True  # ended (stopped or cancelled): later submits must not hang
            self._fail_queued(OutboxClosedError("the outbox writer stopped before committing this event"))
            self._finished.set()

    async def stop(self) -> None:
        """Commit what is queued, then end :meth:`run` (or drain here if it is not running)."""
        self._stopping = True
        self._wake.set()
        if self._running:
            await self._finished.wait()
        else:
            while self._queue:
                await self._commit_one_batch()

    async def _commit_one_batch(self) -> None:
        batch = [self._queue.popleft()]
        n = len(batch[0][0])
        while self._queue and n + len(self._queue[0][0]) <= self._max_batch:
            batch.append(self._queue.popleft())
            n += len(batch[-1][0])
        self._queued -= n
        # Shielded: a cancelled run() still learns the outcome and resolves the producers.
        self._in_flight = append = asyncio.create_task(
            self._outbox.append_encoded([encoded for entry, _ in batch for encoded in entry])
        )
        try:
            await asyncio.shield(append)
        except asyncio.CancelledError:
            with contextlib.suppress(BaseException):
                await append
            self._resolve(batch, append)
            raise
        except Exception:
            pass  # handed to the producers below
        self._resolve(batch, append)

    def _resolve(self, batch: list[_Entry], append: asyncio.Future[list[StoredEvent]]) -> None:
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
