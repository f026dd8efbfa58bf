"""Opening an outbox file: the lock beside it, the file made ready, the reserve, the connection.

:func:`open_file` takes ``<file>.lock`` (one process at a time; the kernel drops it if
the process dies), has :mod:`edge_agent.outbox.recovery` check, migrate or quarantine the
file, allocates the disk-full reserve (:mod:`edge_agent.outbox.reserve`), connects with
the outbox's pragmas and reads the state row, then hands all of it to the caller's
``start``.  Whatever fails on the way, up to and including ``start``, closes what was
opened and releases the lock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import logging
import os
import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TypeVar

import aiosqlite

from edge_agent.outbox.dirs import make_durable_dir
from edge_agent.outbox.errors import OutboxError, OutboxLockedError
from edge_agent.outbox.recovery import BUSY_TIMEOUT_MS, Prepared, prepare
from edge_agent.outbox.reserve import Reserve, autocheckpoint_pages
from edge_agent.outbox.transactions import Synchronous, Tally, read_tally

log = logging.getLogger("edge_agent.outbox")

T = TypeVar("T")

JOURNAL_SIZE_LIMIT = 32 * 2**20
"""After a checkpoint the WAL file is truncated to this: a big transaction does not leave a big file."""
CACHE_SIZE_KIB = 512
"""SQLite page cache (default 2 MiB, all of it resident once a backlog builds up).  Appends touch
the right edge of the B-trees and fetches/deletes the left edge, a few pages each: append and
fetch+delete speed measured the same from 2 MiB down to 128 KiB on a 300,000-event backlog."""


@dataclasses.dataclass(frozen=True, slots=True)
class OpenFile:
    """An outbox file, locked, ready and connected."""

    path: Path
    lock_fd: int
    conn: aiosqlite.Connection
    prepared: Prepared
    tally: Tally
    reserve: Reserve
    synchronous: Synchronous


async def open_file(
    path: Path,
    *,
    wall: Callable[[], float],
    synchronous: Synchronous,
    reserve_bytes: int,
    pragmas: Mapping[str, str | int] | None,
    start: Callable[[OpenFile], Awaitable[T]],
) -> T:
    """Open the outbox file at ``path`` and ``start`` the outbox on it (see the module doc).

    ``pragmas`` are applied after ours.  SQLite errors become :class:`OutboxError`.
    """
    # Its name in its parent must survive a power cut too (see dirs.py).
    await asyncio.to_thread(make_durable_dir, path.parent)
    lock_fd = lock(path)
    conn: aiosqlite.Connection | None = None
    try:
        prepared = await asyncio.to_thread(prepare, path, wall())
        reserve = Reserve(path.with_name(path.name + ".reserve"), reserve_bytes)
        if not await asyncio.to_thread(reserve.restore):
            log.warning("no room for the outbox reserve (%d bytes) on a nearly full disk", reserve_bytes)
        conn = await aiosqlite.connect(path, isolation_level="IMMEDIATE")
        for name, value in {
            "busy_timeout": BUSY_TIMEOUT_MS,
            "synchronous": synchronous,
            "journal_size_limit": JOURNAL_SIZE_LIMIT,
            "cache_size": -CACHE_SIZE_KIB,  # negative: KiB, whatever the page size
            "wal_autocheckpoint": autocheckpoint_pages(reserve_bytes),
            **(pragmas or {}),
        }.items():
            await conn.execute(f"PRAGMA {name} = {value}")
        tally = await read_tally(conn)
        return await start(OpenFile(path, lock_fd, conn, prepared, tally, reserve, synchronous))
    except BaseException as exc:
        if conn is not None:
            await conn.close()
        os.close(lock_fd)
        if isinstance(exc, sqlite3.Error):
            raise OutboxError(f"cannot open the outbox {path}: {exc}") from exc
        raise


def lock(path: Path) -> int:
    """An exclusive lock beside the file, held while open (the kernel drops it if we die)."""
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise OutboxLockedError(f"{path} is in use by another process (lock {lock_path})") from None
    return fd
