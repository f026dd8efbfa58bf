"""The fault campaign's own TCP proxy between the agents and the broker.

Faults, each applied to every connection open at that moment:
``drop`` closes both sides at once; ``stall`` stops forwarding for a while, then resumes
(the bytes are delivered late, not lost); ``half_open`` stops forwarding and closes only
the broker's side, so the agent keeps a socket that nothing answers until its keepalive
gives up."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class _Pair:
    client: socket.socket
    upstream: socket.socket
    stalled_until: float = 0.0
    blackholed: bool = False
    closed: bool = False

    def close(self) -> None:
        self.closed = True
        for s in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


@dataclass
class FaultProxy:
    target_port: int
    port: int = 0
    faults: dict[str, int] = field(default_factory=lambda: {"drop": 0, "stall": 0, "half_open": 0})
    _pairs: list[_Pair] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _listener: socket.socket | None = None

    def start(self) -> FaultProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()
        return self

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
            except OSError:
                client.close()  # no broker: the agent sees a refused/closed connection
                continue
            upstream.settimeout(None)
            pair = _Pair(client, upstream)
            with self._lock:
                self._pairs = [p for p in self._pairs if not p.closed] + [pair]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(pair, src, dst), daemon=True).start()

    def _pump(self, pair: _Pair, src: socket.socket, dst: socket.socket) -> None:
        while not pair.closed:
            try:
                data = src.recv(65536)
            except OSError:
                break
            if not data:
                break
            while time.monotonic() < pair.stalled_until and not pair.closed:
                time.sleep(0.05)
            if pair.blackholed:
                continue  # read and thrown away: the sender sees an open, silent peer
            try:
                dst.sendall(data)
            except OSError:
                break
        if not pair.blackholed:
            pair.close()

    def _each(self) -> list[_Pair]:
        with self._lock:
            return [p for p in self._pairs if not p.closed]

    def drop(self) -> None:
        self.faults["drop"] += 1
        for p in self._each():
            p.close()

    def stall(self, seconds: float) -> None:
        self.faults["stall"] += 1
        for p in self._each():
            p.stalled_until = time.monotonic() + seconds

    def half_open(self) -> None:
        self.faults["half_open"] += 1
        for p in self._each():
            p.blackholed = True
            with contextlib.suppress(OSError):  # the broker sees the connection go; the agent does not
                p.upstream.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
        for p in self._each():
            p.close()
        # Half-open pairs: their agent sides too.
        with self._lock:
            for p in self._pairs:
                p.close()
