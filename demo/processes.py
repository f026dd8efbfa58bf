"""The demo's child processes: started in their own session (Ctrl-C reaches the demo only,
which stops them in order: agents, ingest, auth, broker) and stopped by their pid."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


class DemoError(Exception):
    """Something the demo cannot go on without; its message is the one line shown."""


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return int(r.status) < 500
    except OSError:
        return False


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self) -> str:
        lines = self.log.read_text(errors="replace").strip().splitlines() if self.log.exists() else []
        return lines[-1] if lines else "(no output)"


@dataclass
class Children:
    logs: Path
    started: list[Child] = field(default_factory=list)

    def start(self, name: str, argv: list[str]) -> Child:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # the terminal's Ctrl-C is ours to hand on, in order
            )
        child = Child(name, process, log)
        self.started.append(child)
        return child

    def wait_for(self, child: Child, ready: Callable[[], bool], what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if child.process.poll() is not None:
                raise DemoError(
                    f"{child.name} exited ({child.process.returncode}): {child.tail()} (log: {child.log})"
                )
            if time.monotonic() > deadline:
                raise DemoError(f"{child.name}: no {what} after {timeout:.0f} s (log: {child.log})")
            time.sleep(0.1)

    def stop_all(self, timeout: float = 15) -> None:
        """Newest first: the agents before the ingest, the broker last."""
        for child in reversed(self.started):
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
            try:
                child.process.wait(timeout)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        self.started.clear()
