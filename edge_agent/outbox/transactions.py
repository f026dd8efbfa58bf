"""The outbox's write transactions, and the ``state`` row each one commits.

:class:`Tally` is the ``state`` row: the seq counter, the runtime clock, the pending
totals and the eviction counters.  :class:`Transactions` owns the outbox's one connection
and the lock around it, so a read never sees a transaction half done.  ``write`` runs a
body in ONE transaction on a *copy* of the tally and commits the state row with it; the
copy replaces the tally only after COMMIT, so the in-memory counters never disagree with
the file.  A write runs in a task shielded from cancellation: a cancelled caller cannot
leave it open.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import aiosqlite

from edge_agent.outbox.errors import OutboxClosedError, OutboxError
from edge_agent.outbox.runtime import RuntimeClock

log = logging.getLogger("edge_agent.outbox")

T = TypeVar("T")
Synchronous = Literal["FULL", "NORMAL"]
EvictionReason = Literal["size_cap", "age_cap", "disk_full"]

_UPDATE_STATE = (
    "UPDATE state SET last_seq = ?, runtime = ?, pending_bytes = ?, pending_count = ?, commits = ?,"
    " evicted_size_cap = ?, evicted_age_cap = ?, evicted_disk_full = ?, disk_full_count = ?,"
    " last_publish = ?, exported = ? WHERE id = 1"
)
_SELECT_STATE = (
    "SELECT last_seq, runtime, pending_bytes, pending_count, commits, evicted_size_cap, evicted_age_cap,"
    " evicted_disk_full, disk_full_count, last_publish, exported FROM state WHERE id = 1"
)


@dataclasses.dataclass(slots=True)
class Tally:
    """The ``state`` row.  A transaction works on a copy, swapped in only after COMMIT."""

    last_seq: int
    runtime: float
    pending_bytes: int
    pending_count: int
    commits: int
    evicted_size_cap: int
    evicted_age_cap: int
    evicted_disk_full: int
    disk_full_count: int
    last_publish: float | None
    exported: int
    """Events written to a file by ``buffer export --mark-exported`` and removed: carried
    out, not lost (the cloud's import stores them)."""

    def row(self) -> tuple[Any, ...]:
        return dataclasses.astuple(self)

    def copy(self) -> Tally:
        return dataclasses.replace(self)

    def count_evicted(self, reason: EvictionReason, n: int) -> None:
        name = f"evicted_{reason}"
        setattr(self, name, getattr(self, name) + n)


async def read_tally(conn: aiosqlite.Connection) -> Tally:
    rows = list(await conn.execute_fetchall(_SELECT_STATE))
    return Tally(*rows[0])


async def nothing(tally: Tally) -> None:
    """A transaction that only persists the state row (runtime clock, last publish)."""


class Transactions:
    """The connection, its lock, and the tally as last committed."""

    def __init__(
        self,
        path: Path,
        conn: aiosqlite.Connection,
        tally: Tally,
        runtime: RuntimeClock,
        *,
        synchronous: Synchronous,
        after_commit: Callable[[Tally], Awaitable[None]],
        after_rollback: Callable[[], None],
    ) -> None:
        """``after_commit`` runs under the lock once the new tally is in place;
        ``after_rollback`` when a transaction failed (it may have moved in-memory state)."""
        self.path = path
        self.conn = conn
        self.tally = tally
        self.runtime = runtime
        self.lock = asyncio.Lock()
        self.durable = synchronous
        """The setting for transactions that commit events (FULL unless benchmarking NORMAL)."""
        self._synchronous = synchronous
        """The connection's current setting."""
        self.closed = False
        self.commits = 0
        """Write transactions committed by this process (group commit shows here)."""
        self.last_publish = tally.last_publish
        """Written to the state row by the next transaction."""
        self.publish_persisted_at = -math.inf
        self.disk_full_unsaved = 0
        """SQLITE_FULL errors not yet counted in the state row."""
        self._committed = asyncio.Event()
        self._after_commit = after_commit
        self._after_rollback = after_rollback

    def check_open(self) -> None:
        if self.closed:
            raise OutboxClosedError(f"the outbox {self.path} is closed")

    async def read(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        async with self.lock:
            self.check_open()
            try:
                return list(await self.conn.execute_fetchall(sql, params))
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox read failed: {exc}") from exc

    async def write(
        self, body: Callable[[Tally], Awaitable[T]], *, synchronous: Synchronous | None = None
    ) -> T:
        """Run ``body`` in one write transaction (``synchronous`` defaults to the durable
        setting, FULL).  Shielded: once started, it finishes."""
        self.check_open()
        task = asyncio.ensure_future(self._transaction(body, synchronous or self.durable))
        task.add_done_callback(_retrieve)
        return await asyncio.shield(task)

    async def _transaction(self, body: Callable[[Tally], Awaitable[T]], synchronous: Synchronous) -> T:
        conn = self.conn
        async with self.lock:
            self.check_open()
            tally = self.tally.copy()
            disk_full = self.disk_full_unsaved
            try:
                if synchronous != self._synchronous:
                    await conn.execute(f"PRAGMA synchronous = {synchronous}")
                    self._synchronous = synchronous
                # The connection opens the transaction (BEGIN IMMEDIATE) itself before the
                # first write, in the same round trip to its thread: one hop fewer per commit.
                # Reads a body makes before its first write are outside it, which is safe:
                # this lock and the file lock make this connection the only writer.
                result = await body(tally)
                tally.runtime = self.runtime.now()
                tally.commits += 1
                tally.last_publish = self.last_publish
                tally.disk_full_count += disk_full
                await conn.execute(_UPDATE_STATE, tally.row())
                await conn.commit()
            except BaseException as exc:
                self._after_rollback()
                if conn.in_transaction:
                    try:
                        await conn.rollback()
                    except sqlite3.Error as rollback_exc:
                        log.error("outbox rollback failed: %s", rollback_exc)
                if isinstance(exc, sqlite3.Error):
                    raise OutboxError(f"outbox transaction failed: {exc}") from exc
                raise
            grew = tally.last_seq > self.tally.last_seq
            self.tally = tally
            self.disk_full_unsaved -= disk_full
            self.commits += 1
            self.publish_persisted_at = tally.runtime
            await self._after_commit(tally)
        if grew:
            self.notify()
        return result

    async def checkpoint(self) -> None:
        """Copy the WAL into the database file and truncate it (frees disk space)."""
        async with self.lock:
            self.check_open()
            try:
                await self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                log.debug("checkpoint failed: %s", exc)

    async def set_pragma(self, name: str, value: int) -> None:
        async with self.lock:
            self.check_open()
            await self.conn.execute(f"PRAGMA {name} = {value}")

    async def next_commit(self) -> None:
        """Wait for the next commit that adds events (or for :meth:`close`)."""
        await self._committed.wait()

    def notify(self) -> None:
        self._committed.set()
        self._committed = asyncio.Event()

    async def close(self) -> None:
        """Refuse further use, wake the waiters, close the connection."""
        self.closed = True
        self.notify()
        await self.conn.close()


def _retrieve(task: asyncio.Task[Any]) -> None:
    # The caller may have been cancelled while the shielded transaction went on.
    if not task.cancelled():
        task.exception()
