"""The outbox's page size: 4 KiB, and the migration of files made with another.

The release of issue 15 made outbox files with 1 KiB pages, to write less per commit.
Measured since (docs/DURABILITY.md, "Flash wear"): at the daemon's rates, with the commit
window, the pending rows of 5 sensors at 1 Hz fit ONE 4 KiB leaf, so a commit writes
three pages (that leaf, the lane index's, the state row's) where 1 KiB pages wrote nine
(the rows spill over several leaves, each allocated and freed with its free-list and
pointer-map pages); the bytes written came out about the same, and 1 KiB pages cost bulk
appends and deletes 30-40 % more CPU (four times the pages to fill and empty).  So 4 KiB
it is again, SQLite's default.

A new file gets the page size before its first table.  A file made with 1 KiB pages is
rebuilt once, at open, before anything else uses it, by a copy and a rename, so that a
power cut at any point leaves either the old file or the new one, each whole:

1. the WAL is checkpointed into the file and removed (SQLite does both when the last
   connection closes), and the directory fsynced, so no old WAL can come back beside the
   new file;
2. ``VACUUM INTO <file>.rebuild`` with the new page size writes a compact copy, which is
   fsynced;
3. the copy is renamed over the file, and the directory fsynced.

A leftover ``<file>.rebuild`` (a cut before step 3) is deleted at the next open, which
then starts over.  The rebuild needs room for the copy (the file's size at most) plus the
disk-full reserve; without it, the file keeps its pages and works as before (a warning
says so), to be rebuilt at a later start.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

from edge_agent.outbox.dirs import fsync_dir
from edge_agent.outbox.reserve import DEFAULT_RESERVE, PAGE_SIZE

log = logging.getLogger("edge_agent.outbox")


def page_size_of(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA page_size").fetchone()[0])


def room_to_rebuild(path: Path) -> tuple[bool, int, int]:
    """Whether the rebuild fits: ``(fits, bytes needed, bytes free)``."""
    size = path.stat().st_size + sum(
        Path(f"{path}{suffix}").stat().st_size for suffix in ("-wal",) if Path(f"{path}{suffix}").exists()
    )
    stat = os.statvfs(path.parent)
    free = stat.f_bavail * stat.f_frsize
    need = size + DEFAULT_RESERVE
    return free >= need, need, free


def rebuild(path: Path) -> bool:
    """Bring an existing outbox file at another page size to :data:`PAGE_SIZE` (see the
    module doc); True if rebuilt.  Blocking; nobody else may have the file open."""
    copy = path.with_name(path.name + ".rebuild")
    copy.unlink(missing_ok=True)  # a rebuild cut short: start over
    if not path.exists():
        return False
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        old = page_size_of(conn)
        if old == PAGE_SIZE:
            return False
        fits, need, free = room_to_rebuild(path)
        if not fits:
            log.warning(
                "outbox %s keeps its %d-byte pages for now: rebuilding it with %d-byte pages "
                "needs %d MB free, %d MB are",
                path,
                old,
                PAGE_SIZE,
                need // 10**6,
                free // 10**6,
            )
            return False
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()  # the last connection: SQLite checkpoints and removes the WAL
    fsync_dir(path.parent)
    started = time.monotonic()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # files from schema v1 lacked it
        conn.execute("VACUUM INTO ?", (str(copy),))
    finally:
        conn.close()
    fd = os.open(copy, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(copy, path)
    fsync_dir(path.parent)
    log.warning(
        "outbox %s rebuilt with %d-byte pages (was %d) in %.1f s",
        path,
        PAGE_SIZE,
        old,
        time.monotonic() - started,
    )
    return True
