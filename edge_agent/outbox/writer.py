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

The commit window (``interval``, ``storage.commit_interval``): with ``interval > 0`` the
first event queued after a commit opens a window of that many seconds, and everything
queued until it closes goes into one transaction (fewer, fuller transactions: fewer pages
written per event, see docs/DURABILITY.md "Flash wear").  Nothing is published before it
is committed (the uplink reads committed rows only); an event waiting in the window is
lost on a crash exactly as a reading not yet taken.  :meth:`stop`, :meth:`hurry`,
:meth:`flush` and :meth:`window_closed` close the window at once, and so does a queue of ``max_batch`` events.  ``interval = 0``
commits as soon as the previous transaction is done (group commit only).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Sequence

from edge_agent.events import NewEvent, StoredEvent
from edge_agent.outbox.codec import EncodedEvent
from edge_agent.outbox.drops import DropLedger
from edge_agent.outbox.errors import OutboxClosedError, OutboxError
from edge_agent.outbox.store import Outbox

log = logging.getLogger("edge_agent.outbox")

_Entry = tuple[list[EncodedEvent], "asyncio.Future[list[StoredEvent]]"]
"""One submission: its encoded events and the future its producer waits on."""


class OutboxWriter:
    def __init__(self, outbox: Outbox, *, max_batch: int = 1000, interval: float = 0.0) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if interval < 0:
            raise ValueError("interval must not be negative")
        self._outbox = outbox
        self._max_batch = max_batch
        self._interval = interval
        self._window_opened: float | None = None
        """Loop time of the first event queued since the last commit took the queue."""
        self._flushing = 0
        """:meth:`window_closed` blocks running: the window is closed while any is."""
        self._hurried = False
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
        self.drops = DropLedger()
        """The same, by reason and sensor, and which of them a gap event has announced."""
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
            self.drops.dropped(event, exc)
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
        self.drops.committed()
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
        if self._window_opened is None:
            self._window_opened = asyncio.get_running_loop().time()
        self._queue.append((encoded, future))
        self._queued += len(encoded)
        self._wake.set()
        return future

    async def flush(self) -> None:
        """Close the window now and wait until what is queued is committed (or failed)."""
        async with self.window_closed():
            futures = [future for _, future in self._queue]
            if futures:
                await asyncio.gather(*futures, return_exceptions=True)

    @contextlib.asynccontextmanager
    async def window_closed(self) -> AsyncIterator[None]:
        """Inside: no window, every event is committed at once (a reload, whose events
        must not wait a window to be told)."""
        self._flushing += 1
        self._wake.set()
        try:
            yield
        finally:
            self._flushing -= 1

    def hurry(self) -> None:
        """No window from now on: every event is committed at once (the daemon is stopping)."""
        self._hurried = True
        self._wake.set()

    def _window_left(self) -> float:
        """Seconds before the open window closes (0: commit now)."""
        if (
            self._stopping
            or self._hurried
            or self._flushing
            or self._queued >= self._max_batch
            or self._window_opened is None
        ):
            return 0.0
        return self._window_opened + self._interval - asyncio.get_running_loop().time()

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
                if self._interval > 0 and (left := self._window_left()) > 0:
                    self._wake.clear()  # set again by a submit, flush or stop: look again then
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(left):
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
        if not self._queue:  # the next event opens the next window; any left over are due now
            self._window_opened = None
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
