"""A fake systemd: a datagram socket that records every sd_notify message, with its arrival time."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path


class NotifyListener:
    """Binds ``path`` (or an abstract name when ``abstract``); ``messages`` holds (monotonic, text)."""

    def __init__(self, path: Path | None = None, *, abstract: str | None = None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract is not None:
            self.sock.bind(b"\0" + abstract.encode())
            self.env_value = "@" + abstract
        else:
            assert path is not None
            self.sock.bind(str(path))
            self.env_value = str(path)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._running = True
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while self._running:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.messages.append((time.monotonic(), data.decode()))

    def texts(self) -> list[str]:
        with self._lock:
            return [m for _, m in self.messages]

    def times_of(self, assignment: str) -> list[float]:
        with self._lock:
            return [t for t, m in self.messages if assignment in m.split("\n")]

    def sequence(self) -> list[str]:
        """READY / WATCHDOG / RELOADING / STOPPING in arrival order (STATUS-only messages left out)."""
        out = []
        for text in self.texts():
            for line in text.split("\n"):
                if line in ("READY=1", "WATCHDOG=1", "RELOADING=1", "STOPPING=1"):
                    out.append(line.removesuffix("=1"))
        return out

    def close(self) -> None:
        self._running = False
        self.sock.close()
        self._thread.join(2)


def collapse(seq: list[str]) -> list[str]:
    """Runs of the same word collapsed: READY, WATCHDOG, WATCHDOG → READY, WATCHDOG."""
    out: list[str] = []
    for word in seq:
        if not out or out[-1] != word:
            out.append(word)
    return out


async def until(predicate: Callable[[], object], timeout: float = 30.0) -> None:
    """Poll ``predicate`` on the event loop until it is true (TimeoutError after ``timeout``)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples_of(exposition: str) -> Samples:
    """Prometheus text → value by (sample name, sorted labels)."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(exposition)
        for s in family.samples
    }
