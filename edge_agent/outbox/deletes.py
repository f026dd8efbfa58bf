"""Acknowledged deletes carried by the next append's transaction.

A delete committed on its own rewrites the pages of the rows it removes, the lane index
and the state row, all of which the next append's transaction rewrites anyway (the state
row always; the leaves at the left edge of the B-trees often).  With a window (the
outbox's ``delete_window``, ``storage.commit_interval``), :meth:`PendingDeletes.add`
parks the seqs and the caller waits; the next append takes them (:meth:`take`) into its
transaction, or, if no append comes within the window, :meth:`add`'s timer commits them
alone.  Each caller learns its outcome only once its delete has COMMITTED, so the claim
and acknowledgement semantics are those of a delete on its own: until then the seqs stay
claimed and the uplink keeps them as "being deleted".  A carried delete commits with the
append (``synchronous=FULL``); one lost in a power cut would only bring acknowledged
events back, to be sent again, which the cloud dedupes by id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import aiosqlite

from edge_agent.outbox import codec
from edge_agent.outbox.transactions import Tally

log = logging.getLogger("edge_agent.outbox")

Waiting = list[tuple[list[int], "asyncio.Future[int]"]]
"""Parked deletes: each caller's seqs and the future it waits on."""


async def delete_rows(conn: aiosqlite.Connection, tally: Tally, seqs: list[int]) -> set[int]:
    """In the caller's transaction: delete ``seqs`` (unknown ones ignored), count them out
    of ``tally``; returns the seqs deleted."""
    rows = await conn.execute_fetchall(
        "DELETE FROM events WHERE seq IN (SELECT value FROM json_each(?)) RETURNING seq, size",
        (codec.dumps(seqs),),
    )
    deleted = set()
    for seq, size in rows:
        deleted.add(seq)
        tally.pending_bytes -= size
        tally.pending_count -= 1
    return deleted


def seqs_of(waiting: Waiting) -> list[int]:
    return sorted({seq for seqs, _ in waiting for seq in seqs})


def resolve(waiting: Waiting, deleted: set[int]) -> None:
    """The deletes of ``waiting`` committed: each caller gets its count of rows deleted."""
    for seqs, future in waiting:
        if not future.done():
            future.set_result(sum(1 for seq in seqs if seq in deleted))


def fail(waiting: Waiting, error: BaseException) -> None:
    for _, future in waiting:
        if not future.done():
            future.set_exception(error)


class PendingDeletes:
    """Deletes waiting for a transaction; ``commit_alone`` commits some on their own."""

    def __init__(self, window: float, commit_alone: Callable[[Waiting], Awaitable[None]]) -> None:
        self.window = window
        self._commit_alone = commit_alone
        self._waiting: Waiting = []
        self._timer: asyncio.TimerHandle | None = None
        self._alone: set[asyncio.Task[None]] = set()

    def __bool__(self) -> bool:
        return bool(self._waiting)

    def add(self, seqs: list[int]) -> asyncio.Future[int]:
        """Park ``seqs``; the future resolves once their delete has committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._waiting.append((seqs, future))
        if self._timer is None:
            self._timer = loop.call_later(self.window, self._due)
        return future

    def take(self) -> Waiting:
        """All parked deletes, for a transaction about to run (the timer is off)."""
        taken, self._waiting = self._waiting, []
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return taken

    def put_back(self, taken: Waiting) -> None:
        """The transaction that took them did not commit: they wait again (for the window)."""
        if not taken:
            return
        self._waiting[:0] = taken
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.window, self._due)

    def _due(self) -> None:
        """No append came within the window: commit what waits on its own."""
        self._timer = None
        taken = self.take()
        if taken:
            task = asyncio.ensure_future(self._commit_alone(taken))
            self._alone.add(task)
            task.add_done_callback(self._alone.discard)

    async def stop_waiting(self) -> None:
        """No append will come any more: commit what waits now, and later deletes at once."""
        self.window = 0.0
        await self.drain()

    async def drain(self) -> None:
        """Commit what waits now, and wait for the lone commits under way (at close)."""
        taken = self.take()
        if taken:
            await self._commit_alone(taken)
        if self._alone:
            await asyncio.gather(*self._alone, return_exceptions=True)
