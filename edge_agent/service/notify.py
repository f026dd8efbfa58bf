"""``sd_notify(3)`` without libsystemd: one datagram per message to ``$NOTIFY_SOCKET``.

The protocol is newline-separated ``KEY=VALUE`` assignments in a single datagram sent
to the Unix socket named by ``$NOTIFY_SOCKET``; a name starting with ``@`` is in the
abstract namespace (the ``@`` becomes a NUL byte).  Outside systemd the variable is
unset and every call is a no-op, so the daemon runs the same from a terminal.

``WATCHDOG_USEC`` (set by systemd when the unit has ``WatchdogSec=``) is the deadline
between two ``WATCHDOG=1``; we ping at half of it, as sd_watchdog_enabled(3) advises.
It is honoured only when ``WATCHDOG_PID`` is unset or names this process.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends state changes to systemd; silent when not started by it."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self.watchdog_interval = _watchdog_interval(env)
        self._sock: socket.socket | None = None
        self._failed_once = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *assignments: str) -> bool:
        """Send ``KEY=VALUE`` lines in one datagram; False if not sent (never raises)."""
        if self.address is None:
            return False
        payload = "\n".join(assignments).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(payload, self.address)
        except OSError as exc:
            # systemd gone or the socket replaced: the watchdog will act; do not crash the daemon.
            if not self._failed_once:
                log.warning("sd_notify to %r failed: %s", _printable(self.address), exc)
                self._failed_once = True
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1", *_status(status))

    def reloading(self) -> bool:
        # systemd ≥ 253 (Type=notify-reload) wants MONOTONIC_USEC with RELOADING=1.
        return self.send(
            "RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"
        )

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.send(*_status(text))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _status(text: str | None) -> list[str]:
    # STATUS= is one line: a newline would start another assignment.
    return [] if text is None else ["STATUS=" + " ".join(text.split())]


def _socket_address(value: str) -> str | bytes | None:
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    log.warning("NOTIFY_SOCKET=%r is neither a path nor an abstract socket; not notifying systemd", value)
    return None


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Seconds between pings (half of ``WATCHDOG_USEC``), or None when no watchdog is set."""
    pid = env.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", "0"))
    except ValueError:
        log.warning("WATCHDOG_USEC=%r is not an integer; watchdog pings disabled", env.get("WATCHDOG_USEC"))
        return None
    return usec / 2e6 if usec > 0 else None


def _printable(address: str | bytes) -> str:
    return "@" + address[1:].decode(errors="replace") if isinstance(address, bytes) else address
