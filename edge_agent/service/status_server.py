"""The daemon's status interface: a Unix socket in the state directory serving one JSON
snapshot per connection (``{state_dir}/status.sock``, mode 0660).

Why a Unix socket and not HTTP on the metrics listener: it exists even with metrics
disabled, needs no port, and file permissions decide who may ask (root and the
``edge-agent`` group under the shipped unit).  The protocol is: connect, read until
EOF, parse JSON.  ``edge-agent status`` is the client (:func:`read_status`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_agent.errors import EdgeAgentError

log = logging.getLogger(__name__)

SOCKET_NAME = "status.sock"
MAX_PATH = 107
"""``sun_path`` holds 108 bytes, NUL included."""
MAX_REPLY = 4 * 1024 * 1024


def status_socket(state_dir: Path) -> Path:
    return state_dir / SOCKET_NAME


class StatusServer:
    def __init__(self, path: Path, snapshot: Callable[[], dict[str, Any]]) -> None:
        self.path = path
        self._snapshot = snapshot
        self._server: asyncio.Server | None = None

    async def start(self) -> bool:
        """Listen; False (logged) when the socket cannot be made, which is not fatal."""
        if len(os.fsencode(self.path)) > MAX_PATH:
            log.warning(
                "status socket path %s is too long for a Unix socket; edge-agent status will not work",
                self.path,
            )
            return False
        # Only one daemon can hold the outbox of this state directory: a socket left here
        # is from a daemon that died, never a live one.
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
            os.chmod(self.path, 0o660)
        except OSError as exc:
            log.warning("cannot listen on %s (%s); edge-agent status will not work", self.path, exc.strerror)
            return False
        return True

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(json.dumps(self._snapshot(), separators=(",", ":")).encode() + b"\n")
            async with asyncio.timeout(5):
                await writer.drain()
        except (OSError, TimeoutError) as exc:
            log.debug("status client went away: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(1):
                    await writer.wait_closed()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class StatusUnavailable(EdgeAgentError):
    """No daemon answers on the status socket, or its answer is not a status."""


def read_status(path: Path, *, timeout: float = 5.0) -> dict[str, Any]:
    """Ask the running daemon (blocking; for the CLI)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise StatusUnavailable(f"edge-agent is not running (nothing answers on {path})") from exc
        except PermissionError as exc:
            raise StatusUnavailable(
                f"permission denied on {path}: run as root or as a member of the edge-agent group"
            ) from exc
        except OSError as exc:
            raise StatusUnavailable(f"cannot reach the daemon at {path}: {exc.strerror or exc}") from exc
        chunks: list[bytes] = []
        size = 0
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_REPLY:
                    raise StatusUnavailable(f"the reply on {path} is over {MAX_REPLY} bytes; not a status")
        except TimeoutError as exc:
            raise StatusUnavailable(
                f"the daemon at {path} did not answer within {timeout:g} s (stuck?)"
            ) from exc
    try:
        reply = json.loads(b"".join(chunks))
    except ValueError as exc:
        raise StatusUnavailable(f"the reply on {path} is not JSON (truncated?): {exc}") from exc
    if not isinstance(reply, dict) or "sensors" not in reply:
        raise StatusUnavailable(f"the reply on {path} is not an edge-agent status")
    return reply
