"""Fixtures of the uplink tests: a private Mosquitto, an observer, forwarder settings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from edge_agent.settings import MQTTSettings
from edge_agent.uplink import Forwarder
from tests.mosquitto import Mosquitto

DEVICE = "dev-1"


@pytest.fixture(params=["memory", "sqlite"])
def outbox_kind(request: pytest.FixtureRequest) -> str:
    """Run a test against the in-memory outbox double and against the real SQLite outbox."""
    return str(request.param)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker") as b:
        yield b


def settings_for(broker: Mosquitto, **overrides: Any) -> MQTTSettings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": broker.port,
        "keepalive": 5,
        "reconnect_min": 0.05,
        "reconnect_max": 0.4,
    }
    values.update(overrides)
    return MQTTSettings(**values)


@asynccontextmanager
async def running(forwarder: Forwarder) -> AsyncIterator[Forwarder]:
    import asyncio

    task = asyncio.create_task(forwarder.run())
    try:
        yield forwarder
    finally:
        await forwarder.stop()
        await task
