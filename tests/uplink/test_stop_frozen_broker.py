"""Stopping while the broker is frozen (SIGSTOP): the log says why the offline status was not confirmed."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import pytest

from edge_agent.uplink import Forwarder
from tests.mosquitto import Mosquitto
from tests.uplink.conftest import DEVICE, settings_for
from tests.uplink.helpers import BOOT, open_outbox, readings, until


def test_offline_status_unconfirmed_names_the_reason(
    broker: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with open_outbox("sqlite", tmp_path) as outbox:
            await outbox.append(readings(3))
            fwd = Forwarder(outbox, settings_for(broker), device_id=DEVICE, boot=BOOT)
            task = asyncio.create_task(fwd.run())
            await until(lambda: outbox.pending_count == 0, what="the backlog sent")
            assert broker.process is not None
            os.kill(broker.process.pid, signal.SIGSTOP)
            try:
                with caplog.at_level(logging.WARNING, logger="edge_agent.uplink"):
                    await fwd.stop()
                    await task
            finally:
                os.kill(broker.process.pid, signal.SIGCONT)

    asyncio.run(main())
    lines = [r.getMessage() for r in caplog.records if "offline status not confirmed" in r.getMessage()]
    assert lines == ["MQTT: offline status not confirmed: no PUBACK within 1 s"], caplog.text
