"""Directories whose entries survive a power cut.

A new file's or directory's *name* is durable only once its parent directory has been
fsynced (POSIX; ext4 in its default mode happens to commit it with the next fsync of any
file, other file systems need not).  SQLite fsyncs the directory when it creates its WAL
or journal, which covers the database file's name, but nothing made the state directory's
own entry in its parent durable: the power-cut campaign (tests/powercut) lost a whole
outbox that way on a cut shortly after the first start.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

log = logging.getLogger("edge_agent.outbox")


def fsync_dir(directory: Path) -> None:
    """Make the entries of ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_durable_dir(directory: Path) -> None:
    """Create ``directory`` (with missing parents) and make its path survive a power cut.

    Fsyncs ``directory`` and every ancestor up to the root: whoever created them (this
    call, the daemon, an installer, systemd) may not have, and a directory already
    synced costs next to nothing.  A directory that cannot be fsynced (some file systems
    refuse) is logged, not fatal.
    """
    directory = directory.absolute()
    directory.mkdir(parents=True, exist_ok=True)
    for here in (directory, *directory.parents):
        try:
            fsync_dir(here)
        except OSError as exc:
            log.warning(
                "could not fsync the directory %s (a power cut may lose its new entries): %s", here, exc
            )


def write_durably(final: Path, body: bytes) -> None:
    """Write ``body`` to ``final`` so that a power cut leaves the old file or the whole new
    one: written beside it, fsynced, renamed into place, the directory fsynced.  Raises
    :class:`OSError` (the partial file removed)."""
    partial = final.with_name(f".{final.name}.partial")
    try:
        with partial.open("wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        partial.rename(final)
        fsync_dir(final.parent)
    except OSError:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
