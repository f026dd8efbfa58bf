"""Mount, steer and unmount the power-cut file system (:mod:`tests.powercut.fs`) from a test.

``PowerCutMount(backing, mountpoint)`` starts the FUSE server as its own process;
``cut()``, ``arm()``, ``revert()`` and ``stats()`` talk to it over its control socket;
``unmount()`` ends it.  A power cycle is: ``cut()`` → kill what runs on the mount →
``revert()`` → ``unmount()`` → a new ``PowerCutMount`` on the same backing directory.

:func:`require_fuse` skips a test when FUSE cannot be used here (fails under CI).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, require_binary, under_ci


def require_fuse() -> None:
    """Skip (fail under CI) unless fuse3, /dev/fuse and mfusepy are usable."""
    require_binary("fusermount3", "the power-cut tests need FUSE 3 (apt install fuse3)")
    problem = None
    if not os.path.exists("/dev/fuse"):
        problem = "/dev/fuse does not exist (no FUSE in this kernel or container)"
    else:
        try:
            import mfusepy  # noqa: F401
        except (ImportError, OSError) as exc:
            problem = f"mfusepy cannot load libfuse3: {exc} (pip install mfusepy; apt install fuse3)"
    if problem:
        if under_ci():
            pytest.fail(f"under CI every dependency must be present: {problem}")
        pytest.skip(problem)


class PowerCutMount:
    def __init__(self, backing: Path, mountpoint: Path, *, log: Path | None = None) -> None:
        self.backing = backing
        self.mountpoint = mountpoint
        backing.mkdir(parents=True, exist_ok=True)
        mountpoint.mkdir(parents=True, exist_ok=True)
        # Unix socket paths are short (108 bytes): keep it in /tmp, not under a deep tmp_path.
        self.control = Path("/tmp") / f"powercut-{os.getpid()}-{id(self):x}.sock"
        self.log = log or mountpoint.with_name(mountpoint.name + ".fs.log")
        self._sock: socket.socket | None = None
        self._stream: Any = None
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.powercut.fs", str(backing), str(mountpoint), str(self.control)],
                cwd=REPO,
                stdout=out,
                stderr=out,
            )
        self._wait_mounted()

    def _wait_mounted(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the power-cut FS exited with {self.process.returncode}: {self._log_tail()}"
                )
            if os.path.ismount(self.mountpoint) and self.control.exists():
                return
            time.sleep(0.02)
        self.process.kill()
        raise RuntimeError(f"the power-cut FS did not mount within {timeout} s: {self._log_tail()}")

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    # -- control -------------------------------------------------------------------------

    def request(self, **body: Any) -> dict[str, Any]:
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._sock.settimeout(60)
            self._sock.connect(str(self.control))
            self._stream = self._sock.makefile("rwb")
        self._stream.write(json.dumps(body).encode() + b"\n")
        self._stream.flush()
        answer: dict[str, Any] = json.loads(self._stream.readline())
        if "error" in answer:
            raise RuntimeError(f"power-cut FS: {answer['error']}")
        return answer

    def stats(self) -> dict[str, Any]:
        return self.request(cmd="stats")

    def cut(self) -> dict[str, Any]:
        """The power goes now: every later operation on the mount fails with EIO."""
        return self.request(cmd="cut")

    def arm(self, suffix: str, after: int) -> None:
        """Cut at the ``after``-th later write to a file whose name ends with ``suffix``."""
        self.request(cmd="arm", suffix=suffix, after=after)

    def revert(self, mode: str = "drop", *, seed: int = 0, torn: bool = False) -> dict[str, Any]:
        """Rewrite the backing directory to what survives the cut (after :meth:`cut`)."""
        return self.request(cmd="revert", mode=mode, seed=seed, torn=torn)

    def power_cycle(self, mode: str = "drop", *, seed: int = 0, torn: bool = False) -> dict[str, Any]:
        """Cut (if not yet), revert, unmount; returns what revert reported."""
        self.cut()
        report = self.revert(mode, seed=seed, torn=torn)
        self.unmount()
        return report

    # -- the end -------------------------------------------------------------------------

    def unmount(self) -> None:
        if self._sock is not None:
            self._stream.close()
            self._sock.close()
            self._sock = None
        if self.process.poll() is None:
            fusermount = shutil.which("fusermount3") or "fusermount3"
            result = subprocess.run([fusermount, "-u", str(self.mountpoint)], capture_output=True)
            if result.returncode != 0:  # still busy (a process being killed): detach it
                subprocess.run([fusermount, "-u", "-z", str(self.mountpoint)], capture_output=True)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.control.unlink(missing_ok=True)

    def __enter__(self) -> PowerCutMount:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unmount()
