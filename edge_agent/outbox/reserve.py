"""A reserve file beside the outbox: disk space kept back to get out of a full disk.

On a full disk SQLite cannot even make room: evicting rows writes to the WAL, and
checkpointing the WAL into the database file may need the file to grow.  So the outbox
keeps ``<file>.reserve`` (allocated, not sparse) and deletes it when SQLite reports
SQLITE_FULL; that space lets the checkpoint, the eviction and the retry run, after which
the reserve is allocated again.  The WAL is kept smaller than half the reserve
(``wal_autocheckpoint``) so that one reserve is always enough to checkpoint it.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

log = logging.getLogger("edge_agent.outbox")

DEFAULT_RESERVE = 8 * 2**20
"""Bytes kept back unless ``Outbox.open(reserve_bytes=…)`` says otherwise."""
PAGE_SIZE = 4096
"""The outbox's page size (:mod:`edge_agent.outbox.page_size`); a file of issue 15's release not yet migrated has 1024."""
MIN_AUTOCHECKPOINT_PAGES = 16
MIN_PARTIAL_PAGES = 64
"""The smallest part of the reserve worth holding when the whole does not fit: below
256 KiB (at 4 KiB pages) a full disk is not got out of anyway (measured: a 56 KiB part
let one eviction through, not the next)."""


def autocheckpoint_pages(reserve_bytes: int, page_size: int = PAGE_SIZE) -> int:
    """WAL pages before a checkpoint: half the disk-full reserve, so one reserve always
    leaves room to checkpoint it."""
    return max(MIN_AUTOCHECKPOINT_PAGES, reserve_bytes // (2 * page_size))


class Reserve:
    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size

    @property
    def held(self) -> bool:
        try:
            return self.path.stat().st_size >= self.size
        except FileNotFoundError:
            return False

    def shortfall(self) -> int:
        """Bytes the filesystem lacks for the reserve now (0 if it is held or would fit)."""
        if self.size <= 0 or self.held:
            return 0
        stat = os.statvfs(self.path.parent)
        return max(0, self.size - stat.f_bavail * stat.f_frsize)

    def release(self) -> bool:
        """Give the space back to the filesystem; True if there was a reserve to release."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True

    def restore_what_fits(self) -> bool:
        """The whole reserve, or, on a disk without room for it, half of what is free (a
        whole number of pages, at least ``MIN_PARTIAL_PAGES``), which is then the size this
        reserve keeps aiming at: a reserve of any size is what lets a full disk be got out
        of, and aiming at the whole one would evict every event for room it never had."""
        if self.restore():
            return True
        stat = os.statvfs(self.path.parent)
        part = stat.f_bavail * stat.f_frsize // 2 // PAGE_SIZE * PAGE_SIZE
        if part < MIN_PARTIAL_PAGES * PAGE_SIZE or part >= self.size:
            return False
        self.size = part
        return self.restore()

    def restore(self) -> bool:
        """Allocate the reserve again; False (and no partial file) if there is no room for it."""
        if self.size <= 0 or self.held:
            return True
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as exc:
            log.warning("cannot create the outbox reserve %s: %s", self.path, exc)
            return False
        try:
            _allocate(fd, self.size)
            os.fsync(fd)
        except OSError as exc:
            os.close(fd)
            self.path.unlink(missing_ok=True)
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                log.warning("cannot allocate the outbox reserve %s: %s", self.path, exc)
            return False
        os.close(fd)
        return True


def _allocate(fd: int, size: int) -> None:
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise
        # Filesystems without fallocate: write it, so the blocks are really taken.
        block = b"\0" * 65536
        written = 0
        while written < size:
            written += os.write(fd, block[: min(len(block), size - written)])
