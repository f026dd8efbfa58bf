"""Opening an outbox file whatever state it is in: check it, quarantine it, start afresh.

At open the file gets ``PRAGMA quick_check``, read-only.  A file SQLite calls corrupt
(garbage in a page, truncated, "file is not a database", a read error), one it cannot
open at all, or one that is not an outbox of a schema this code knows, is *moved aside*,
never deleted, with its ``-wal`` and ``-shm``, to ``<name>.corrupt-<UTC timestamp>``
(SQLite finds ``<that>-wal`` there, so :func:`edge_agent.outbox.salvage.salvage` reads it
with its last commits).  A fresh file with a new epoch is created in its place and the
error is logged loudly.  So a start never fails because of the file, and a daemon
restarted by systemd cannot loop on it.  Errors that say nothing about the file (disk
full, busy, out of memory) are raised instead: moving a healthy file aside because the
disk is full would be the worst answer.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from edge_agent.outbox.dirs import fsync_dir
from edge_agent.outbox.errors import OutboxError
from edge_agent.outbox.page_size import rebuild
from edge_agent.outbox.reserve import PAGE_SIZE
from edge_agent.outbox.schema import SCHEMA_VERSION, SchemaError, check, migrate, version_of

log = logging.getLogger("edge_agent.outbox")

SIDE_FILES = ("-wal", "-shm", "-journal")
_CORRUPTION_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
# Extended IOERR codes of a failed read: a bad sector, or a file shorter than its header says.
_READ_ERRORS = frozenset({sqlite3.SQLITE_IOERR_READ, sqlite3.SQLITE_IOERR_SHORT_READ})
_NO_ROOM_FOR_SHM = sqlite3.SQLITE_IOERR_SHMSIZE
"""The ``-shm`` file could not be grown (SQLite writes a byte to each of its pages): on a
full disk, the first open after a clean stop (which removed ``-shm``) gets this."""
_NOT_THE_FILES_FAULT = frozenset(
    {sqlite3.SQLITE_FULL, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_NOMEM, _NO_ROOM_FOR_SHM}
)
"""Errors that say nothing about the file: raised, never a reason to quarantine."""
BUSY_TIMEOUT_MS = 5000


def error_code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code if isinstance(code, int) else None


def is_full(exc: BaseException) -> bool:
    """SQLITE_FULL: the disk is full, or ``max_page_count`` is reached (or no room to grow ``-shm``)."""
    code = error_code(exc)
    return code is not None and (code & 0xFF == sqlite3.SQLITE_FULL or code == _NO_ROOM_FOR_SHM)


def is_corruption(exc: BaseException) -> bool:
    code = error_code(exc)
    return code is not None and (code & 0xFF in _CORRUPTION_CODES or code in _READ_ERRORS)


@dataclass(frozen=True)
class Health:
    """What :func:`inspect` found."""

    problem: str | None
    """None when the file is usable; else why it is not."""
    epoch: str | None
    """The file's epoch, if it could be read."""


@dataclass(frozen=True)
class Prepared:
    """A file ready for use, and what was done to get there."""

    epoch: str
    quarantined: Path | None = None
    problem: str | None = None
    old_epoch: str | None = None


def connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    target = path.resolve().as_uri() + "?mode=ro" if read_only else str(path)
    conn = sqlite3.connect(target, uri=read_only, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def inspect(path: Path) -> Health:
    """Check an existing file; raises :class:`OutboxError` for errors that are not the file's.

    Read-only: a read-write connection would checkpoint the WAL into a damaged file when it
    closes, and delete the WAL, changing the very files that are to be quarantined.  One
    exception: a *hot rollback journal*, left by a power cut while the file was being
    created (before it switched to WAL; found by the power-cut tests), which a read-only
    connection cannot roll back (SQLITE_READONLY_ROLLBACK).  Rolling it back is SQLite's
    own recovery, with no WAL involved, so a read-write connection does it and the check
    runs again.
    """
    health = _inspect_read_only(path)
    if health.problem == _HOT_JOURNAL:
        _roll_back_hot_journal(path)
        health = _inspect_read_only(path)
    return health


_HOT_JOURNAL = "a hot rollback journal that a read-only connection cannot roll back"


def _roll_back_hot_journal(path: Path) -> None:
    conn = connect(path)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the first read rolls back
    except sqlite3.Error as exc:
        log.warning("rolling back the hot journal of %s failed: %s", path, exc)
    finally:
        conn.close()


def _inspect_read_only(path: Path) -> Health:
    epoch = None
    try:
        conn = connect(path, read_only=True)
    except sqlite3.Error as exc:
        if error_code(exc) in _NOT_THE_FILES_FAULT:
            raise OutboxError(f"cannot open {path}: {exc}") from exc
        return Health(f"cannot open it: {exc}", None)
    try:
        epoch = _epoch_or_none(conn)
        rows = conn.execute("PRAGMA quick_check").fetchall()
        if rows != [("ok",)]:
            return Health("quick_check: " + "; ".join(str(r[0]) for r in rows[:5]), epoch)
        check(conn)
        return Health(None, epoch)
    except SchemaError as exc:
        return Health(str(exc), epoch)
    except sqlite3.Error as exc:
        if error_code(exc) == sqlite3.SQLITE_READONLY_ROLLBACK:
            return Health(_HOT_JOURNAL, epoch)
        if not is_corruption(exc) and error_code(exc) in _NOT_THE_FILES_FAULT:
            raise OutboxError(f"cannot check {path}: {exc}") from exc
        # Corrupt, or unreadable in some other way (cannot open it, a read error): either
        # way it cannot be used, and moving it aside loses nothing.
        return Health(f"{exc} ({getattr(exc, 'sqlite_errorname', type(exc).__name__)})", epoch)
    finally:
        conn.close()


def _epoch_or_none(conn: sqlite3.Connection) -> str | None:
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None


def quarantine(path: Path, problem: str, wall: float) -> Path:
    """Move ``path`` and its side files aside; returns the new path of the main file."""
    stamp = datetime.fromtimestamp(wall, UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while any(Path(f"{target}{s}").exists() for s in ("", *SIDE_FILES)):
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    for suffix in ("", *SIDE_FILES):
        source = Path(f"{path}{suffix}")
        if source.exists():
            os.replace(source, f"{target}{suffix}")
    fsync_dir(path.parent)
    log.error(
        "OUTBOX QUARANTINED: %s is unusable (%s); moved to %s and starting a new outbox with a new epoch. "
        "Nothing was deleted: recover its events with `edge-agent buffer salvage %s`.",
        path,
        problem,
        target,
        target,
    )
    return target


def prepare(path: Path, wall: float) -> Prepared:
    """Check, quarantine if needed, create or migrate; returns the file's epoch.

    Blocking (run it in a thread).  Always ends with a usable file when the directory is
    writable: a file found corrupt while migrating is quarantined like one found at check.
    """
    quarantined = problem = old_epoch = None
    if any(Path(f"{path}{s}").exists() for s in ("", "-wal")):
        health = inspect(path)
        if health.problem is not None:
            problem, old_epoch = health.problem, health.epoch
            quarantined = quarantine(path, problem, wall)
        else:
            rebuild(path)  # to the page size of edge_agent.outbox.page_size, once
    try:
        epoch = _create_or_migrate(path)
    except (SchemaError, sqlite3.DatabaseError) as exc:
        if isinstance(exc, sqlite3.DatabaseError) and not is_corruption(exc):
            raise OutboxError(f"cannot prepare {path}: {exc}") from exc
        if quarantined is not None:
            raise OutboxError(f"a fresh outbox at {path} failed too: {exc}") from exc
        problem = f"while migrating: {exc}"
        quarantined = quarantine(path, problem, wall)
        epoch = _create_or_migrate(path)
    return Prepared(epoch, quarantined, problem, old_epoch)


def _create_or_migrate(path: Path) -> str:
    conn = connect(path)
    try:
        if version_of(conn) == 0:
            # Only possible before the first table: lets a full disk get space back
            # (PRAGMA incremental_vacuum) after evictions.  Files from v1 lack it.
            conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # first: edge_agent.outbox.page_size
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise OutboxError(f"{path}: SQLite refused WAL mode (got {mode!r}); is the filesystem local?")
        conn.execute("PRAGMA synchronous = FULL")
        before = migrate(conn)
        if 0 < before < SCHEMA_VERSION:
            log.warning("outbox %s migrated from schema version %d to %d", path, before, SCHEMA_VERSION)
        epoch = _epoch_or_none(conn)
        if epoch is None:
            raise SchemaError("meta has no epoch")
        return epoch
    finally:
        conn.close()
