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
from edge_agent.outbox.recovery import BUSY_TIMEOUT_MS, Prepared, is_full, prepare
from edge_agent.outbox.reserve import Reserve, autocheckpoint_pages
from edge_agent.outbox.transactions import Synchronous, Tally, read_tally

log = logging.getLogger("edge_agent.outbox")

T = TypeVar("T")

JOURNAL_SIZE_LIMIT = 32 * 2**20
"""After a checkpoint the WAL file is truncated to this: a big transaction does not leave a big file."""
TEMP_STORE = "MEMORY"
"""Where SQLite keeps its statement journals (and transient indices).  On disk they are
``etilqs_*`` files in ``/var/tmp`` (on the card): a statement that may have to be undone
alone inside a larger transaction journals the pages it changes there, ~115 KB per commit at
10 × 10 Hz, nearly half of the daemon's ``write_bytes`` (traced; docs/DURABILITY.md,
"Flash wear").  They are deleted before the kernel writes them back, so the device saw
little of it, but a slow card or a busy kernel writes them; in memory they are a few
pages for the length of one statement."""
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
    page_size: int


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
        reserve = Reserve(path.with_name(path.name + ".reserve"), reserve_bytes)
        prepared = await _with_room(reserve, path, lambda: asyncio.to_thread(prepare, path, wall()))
        connected, page_size, tally = await _with_room(
            reserve, path, lambda: _connect(path, synchronous, reserve_bytes, pragmas)
        )
        conn = connected
        # Only now, once the connection has made its -shm and -wal: on a nearly full disk
        # those come first (without them nothing opens), the reserve after.
        if not await asyncio.to_thread(reserve.restore_what_fits):
            log.warning("no room for the outbox reserve (%d bytes) on a nearly full disk", reserve_bytes)
        elif reserve.size < reserve_bytes:
            # The WAL must stay under half the reserve actually held (reserve.py).
            await connected.execute(
                f"PRAGMA wal_autocheckpoint = {autocheckpoint_pages(reserve.size, page_size)}"
            )
            log.warning(
                "only %d of the outbox reserve's %d bytes fit on a nearly full disk: holding those",
                reserve.size,
                reserve_bytes,
            )
        return await start(
            OpenFile(path, lock_fd, connected, prepared, tally, reserve, synchronous, page_size)
        )
    except BaseException as exc:
        if conn is not None:
            await conn.close()
        os.close(lock_fd)
        if isinstance(exc, sqlite3.Error):
            raise OutboxError(f"cannot open the outbox {path}: {exc}") from exc
        raise


async def _with_room(reserve: Reserve, path: Path, attempt: Callable[[], Awaitable[T]]) -> T:
    """``attempt``; if it fails for lack of room (a migration on a full disk, or no room to
    make ``-shm``), once more with the reserve released: the reserve is kept for this."""
    try:
        return await attempt()
    except (OutboxError, sqlite3.Error) as exc:
        if not is_full(exc.__cause__ or exc) or not await asyncio.to_thread(reserve.release):
            raise
        log.warning("no room to open the outbox %s (%s): retrying with its reserve released", path, exc)
    return await attempt()


async def _connect(
    path: Path, synchronous: Synchronous, reserve_bytes: int, pragmas: Mapping[str, str | int] | None
) -> tuple[aiosqlite.Connection, int, Tally]:
    """The connection with the outbox's pragmas, its page size and the state row."""
    conn = await aiosqlite.connect(path, isolation_level="IMMEDIATE")
    try:
        # 4 KiB once migrated; 1 KiB when there was no room to migrate (the WAL budget is in bytes).
        page_size = int(next(iter(await conn.execute_fetchall("PRAGMA page_size")))[0])
        for name, value in {
            "busy_timeout": BUSY_TIMEOUT_MS,
            "synchronous": synchronous,
            "journal_size_limit": JOURNAL_SIZE_LIMIT,
            "cache_size": -CACHE_SIZE_KIB,  # negative: KiB, whatever the page size
            "temp_store": TEMP_STORE,
            "wal_autocheckpoint": autocheckpoint_pages(reserve_bytes, page_size),
            **(pragmas or {}),
        }.items():
            await conn.execute(f"PRAGMA {name} = {value}")
        tally = await read_tally(conn)
    except BaseException:
        await conn.close()
        raise
    return conn, page_size, tally


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
