"""Helpers of the uplink tests: events, waiting, broker credentials."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from edge_agent.events import NewEvent
from edge_protocol.wire import EventKind
from tests.uplink.memory_outbox import MemoryOutbox

BOOT = "test-boot-0001"


def event(kind: EventKind = "reading", n: int = 0, sensor: str | None = "climate") -> NewEvent:
    data: dict[str, Any] = {"temperature": 20.0 + n / 100, "humidity": 45.5}
    if kind == "alarm":
        data = {"code": "over_temperature", "n": n}
    elif kind == "test_result":
        data = {"test": "self-test", "passed": True, "n": n}
    return NewEvent.now(kind, sensor, data, boot=BOOT)


def readings(count: int, start: int = 0) -> list[NewEvent]:
    return [event("reading", start + i) for i in range(count)]


async def until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


def write_password_file(path: Path, users: dict[str, str]) -> Path:
    """A Mosquitto password file: with ``mosquitto_passwd`` when installed, else the
    ``$7$`` (PBKDF2-SHA512, 101 iterations, 12-byte salt) lines Mosquitto 2 writes itself."""
    path.unlink(missing_ok=True)
    tool = shutil.which("mosquitto_passwd")
    if tool is not None:
        path.touch(mode=0o600)
        for user, password in users.items():
            subprocess.run([tool, "-b", str(path), user, password], check=True, capture_output=True)
        return path
    lines = [f"{user}:{hash_password_7(password)}" for user, password in users.items()]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


def hash_password_7(password: str, *, salt: bytes | None = None, iterations: int = 101) -> str:
    salt = salt or os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, dklen=64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


OUTBOX_KINDS = ["memory", "sqlite"]
"""The tests run against the in-memory double and the real SQLite outbox alike."""


@asynccontextmanager
async def open_outbox(kind: str, directory: Path) -> AsyncIterator[Any]:
    """An outbox of ``kind``: ``memory`` (tests/uplink/memory_outbox.py) or ``sqlite`` (the real one)."""
    if kind == "memory":
        yield MemoryOutbox()
        return
    from edge_agent.outbox import Outbox

    outbox = await Outbox.open(
        directory / "outbox.db", max_bytes=256 * 2**20, max_age_s=30 * 86400.0, boot=BOOT
    )
    try:
        yield outbox
    finally:
        await outbox.close()


async def last_publish(outbox: Any) -> float | None:
    if isinstance(outbox, MemoryOutbox):
        return outbox.last_publish
    stats = await outbox.stats()
    return stats.last_publish  # type: ignore[no-any-return]
