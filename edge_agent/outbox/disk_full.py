"""Disk full (``SQLITE_FULL``): getting a transaction through it, and the tight mode after it.

The failed transaction has been rolled back.  :class:`DiskFull` releases the reserve
(:mod:`edge_agent.outbox.reserve`), checkpoints and truncates the WAL and retries; if that
is not enough it evicts the oldest events (reason ``disk_full``, through
:class:`edge_agent.outbox.eviction.Caps`) in steps of ``ROOM_STEP`` bytes, each handed back
to the filesystem (incremental vacuum, truncating checkpoint), and retries again.  Only
when nothing is left to evict does an append raise :class:`OutboxFullError`.  After a
success the reserve is allocated again, evicting more if that is what it takes.

While the disk stays full the outbox is *tight*: the WAL is checkpointed every few pages
so it never needs room to grow, until the reserve is held again with room for a full WAL
beside it (looked at every ``TIGHT_CHECK_COMMITS`` commits).  docs/DURABILITY.md tells
how this was found and tested.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from edge_agent.events import StoredEvent
from edge_agent.outbox.codec import EncodedEvent
from edge_agent.outbox.errors import OutboxError, OutboxFullError
from edge_agent.outbox.eviction import Caps
from edge_agent.outbox.recovery import is_full
from edge_agent.outbox.reserve import MIN_AUTOCHECKPOINT_PAGES, PAGE_SIZE, Reserve, autocheckpoint_pages
from edge_agent.outbox.transactions import Synchronous, Tally, Transactions

log = logging.getLogger("edge_agent.outbox")

T = TypeVar("T")

DISK_FULL_MIN_EVICTION = 16 * 1024
ROOM_STEP = 64 * 1024
"""Bytes evicted per transaction while making room on a full disk."""
VACUUM_STEP_PAGES = 32
DISK_FULL_ATTEMPTS = 12
TIGHT_SLACK = 256 * 1024
"""Free bytes, beyond the reserve and a full WAL, that end the tight-disk mode."""
TIGHT_CHECK_COMMITS = 256
"""While the disk is tight, look whether room came back every this many commits."""


def failed_for_room(exc: OutboxError) -> bool:
    """Whether a transaction failed because SQLite found no room (``SQLITE_FULL``)."""
    return is_full(exc.__cause__ or exc)


class DiskFull:
    """What an outbox does about a full disk: retries, room made by eviction, the reserve, tight mode."""

    def __init__(self, tx: Transactions, caps: Caps, reserve: Reserve, page_size: int = PAGE_SIZE) -> None:
        self._tx = tx
        self._caps = caps
        self._reserve = reserve
        self._page_size = page_size
        self._autocheckpoint = autocheckpoint_pages(reserve.size, page_size)
        self.tight = False
        self.episodes = 0
        """Times the disk became full (entered tight mode) in this process."""
        """The disk was full: the WAL is kept small so it does not need room to grow."""

    async def append_when_full(
        self,
        encoded: Sequence[EncodedEvent],
        insert: Callable[[Tally], Awaitable[list[StoredEvent]]],
        first_error: OutboxError,
    ) -> list[StoredEvent]:
        """``insert`` (the append of ``encoded``) met SQLITE_FULL: release the reserve,
        checkpoint, evict the oldest events, retry."""
        await self._enter_tight(first_error)
        # A tenth of what is pending (hysteresis: the next appends fit too), at least twice
        # the batch; four times more at each attempt that was not enough.
        batch_bytes = sum(e.fixed_size for e in encoded)
        need = max(2 * batch_bytes, self._tx.tally.pending_bytes // 10, DISK_FULL_MIN_EVICTION)
        last_error: BaseException = first_error
        for attempt in range(DISK_FULL_ATTEMPTS):
            await self._tx.checkpoint()
            if attempt:
                if not await self._make_room(need):
                    break
                need *= 2
            try:
                stored = await self._tx.write(insert)
            except OutboxError as exc:
                if not failed_for_room(exc):
                    raise
                last_error = exc
                continue
            await self._restore_reserve()
            return stored
        raise OutboxFullError(
            f"the disk is full and nothing is left to evict from {self._tx.path}: "
            f"{len(encoded)} events were NOT committed"
        ) from last_error

    async def write_making_room(
        self, body: Callable[[Tally], Awaitable[T]], *, synchronous: Synchronous | None = None
    ) -> T:
        """:meth:`Transactions.write` for transactions that add no events (a delete): on
        SQLITE_FULL, release the reserve and truncate the WAL, retry once, then take the
        reserve back."""
        try:
            return await self._tx.write(body, synchronous=synchronous)
        except OutboxError as exc:
            if not failed_for_room(exc):
                raise
            await self._enter_tight(exc)
        await self._tx.checkpoint()
        result = await self._tx.write(body, synchronous=synchronous)
        await self._restore_reserve()
        return result

    async def after_commit(self, tally: Tally) -> None:
        """Called under the lock after every commit: while tight, look for room now and then."""
        if self.tight and tally.commits % TIGHT_CHECK_COMMITS == 0:
            await self._leave_tight_if_room()

    async def _make_room(self, need: int) -> bool:
        """Evict about ``need`` bytes of the oldest events and hand their pages back to the filesystem.

        In steps of ``ROOM_STEP`` bytes, each checkpointed and truncated before the next:
        on a full disk every step must fit in what the previous one gave back.
        """
        freed = 0
        while freed < need:
            step = min(need - freed, ROOM_STEP)
            try:
                evicted = await self._tx.write(functools.partial(self._caps.evict_for_disk, need=step))
            except OutboxError as exc:
                if not failed_for_room(exc):
                    raise
                raise OutboxFullError(
                    f"the disk is full and even evicting needs room: {exc.__cause__}"
                ) from exc
            if not evicted:
                break
            freed += evicted
            await self._vacuum()
        return freed > 0

    async def _vacuum(self) -> None:
        """Hand free pages back to the filesystem (files created with auto_vacuum=INCREMENTAL)."""
        conn = self._tx.conn
        while True:
            async with self._tx.lock:
                try:
                    free = next(iter(await conn.execute_fetchall("PRAGMA freelist_count")))[0]
                    if free:
                        # Python's sqlite3 steps a statement without columns once, and one
                        # step of incremental_vacuum frees one page: one execution per page.
                        await conn.execute("BEGIN IMMEDIATE")
                        await conn.executemany(
                            "PRAGMA incremental_vacuum(1)", [()] * min(free, VACUUM_STEP_PAGES)
                        )
                        await conn.commit()
                except sqlite3.Error as exc:
                    log.debug("incremental_vacuum failed: %s", exc)
                    if conn.in_transaction:
                        await conn.rollback()
                    free = 0
            await self._tx.checkpoint()
            if free <= VACUUM_STEP_PAGES:
                return

    async def _restore_reserve(self) -> None:
        """Allocate the reserve again, evicting more if that is what it takes.  Never raises:
        it runs after the events were committed.

        First hands free pages back (a delete frees some), then evicts what the filesystem
        lacks for the reserve plus a slack (a tenth of what is pending) so the next
        transactions fit — never "the reserve's size" of
        events, which on a small outbox would be all of them.
        """
        try:
            for attempt in range(DISK_FULL_ATTEMPTS):
                if await asyncio.to_thread(self._reserve.restore):
                    return
                if attempt == 0:
                    await self._vacuum()
                    continue
                short = await asyncio.to_thread(self._reserve.shortfall)
                need = short + max(self._tx.tally.pending_bytes // 10, DISK_FULL_MIN_EVICTION)
                if not await self._make_room(need):
                    break
        except OutboxError as exc:
            log.warning("outbox %s: could not make room for its disk-full reserve: %s", self._tx.path, exc)
        log.warning("outbox %s: running without its disk-full reserve (no room for it)", self._tx.path)

    async def _enter_tight(self, error: OutboxError) -> None:
        """The disk is full: release the reserve, and keep the WAL small from now on.

        SQLite's WAL grows up to ``wal_autocheckpoint`` pages before it is reused from its
        start; on a full disk every page it grows by is a new SQLITE_FULL.  While tight, it
        is checkpointed every few pages instead, so it reuses the room it has.
        """
        self._tx.disk_full_unsaved += 1  # persisted by the next transaction that commits
        if self.tight:
            log.debug("outbox %s: the disk is still full (%s); making room", self._tx.path, error.__cause__)
        else:
            log.error(
                "outbox %s: the disk is full (%s); making room, oldest readings first, until it is not",
                self._tx.path,
                error.__cause__,
            )
            self.tight = True
            self.episodes += 1
            await self._tx.set_pragma("wal_autocheckpoint", MIN_AUTOCHECKPOINT_PAGES)
        await asyncio.to_thread(self._reserve.release)

    async def _leave_tight_if_room(self) -> None:
        """Under the lock: back to the normal WAL once the reserve is held and a full WAL fits beside it."""
        try:
            if not await asyncio.to_thread(self._reserve.restore):
                return
            stat = await asyncio.to_thread(os.statvfs, self._tx.path.parent)
            if stat.f_bavail * stat.f_frsize >= self._autocheckpoint * self._page_size + TIGHT_SLACK:
                await self._tx.conn.execute(f"PRAGMA wal_autocheckpoint = {self._autocheckpoint}")
                self.tight = False
                log.info("outbox %s: the disk has room again", self._tx.path)
        except (OSError, sqlite3.Error) as exc:  # the events are committed: a check must not fail them
            log.debug("outbox %s: checking for room failed: %s", self._tx.path, exc)
