"""A small, really fillable filesystem for disk-full tests: a tmpfs mounted with ``size=``.

Mounting needs root and the right to mount.  Without them the test is skipped with the
reason, except under CI (``CI=true``), where it fails: this project's CI runs as root.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import under_ci


def _cannot(reason: str) -> None:
    message = f"{reason}; disk-full tests need a small tmpfs"
    if under_ci():
        pytest.fail(f"under CI this test must run: {message}")
    pytest.skip(message)


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` (e.g. ``"2m"``) on ``where``; unmounted on exit."""
    where.mkdir()
    if os.geteuid() != 0:
        _cannot("mounting a tmpfs needs root")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True
    )
    if result.returncode != 0:
        _cannot(f"cannot mount a tmpfs here ({result.stderr.strip()})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def free_bytes(where: Path) -> int:
    stat = os.statvfs(where)
    return stat.f_bavail * stat.f_frsize


def fill(where: Path, leave: int) -> Path:
    """Fill the filesystem of ``where`` with another file, leaving about ``leave`` bytes
    free (less if something else writes there meanwhile: a full disk is what we want)."""
    filler = where / "filler"
    block = b"\0" * 65536
    with filler.open("ab") as out:
        while (free := free_bytes(where)) > leave:
            try:
                out.write(block[: min(len(block), free - leave)])
                out.flush()
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    return filler
