"""The real daemon talks to a fake systemd: READY → WATCHDOG… → STOPPING, and no pings
while its event loop is blocked."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace

from edge_agent.daemon.main import Daemon
from edge_agent.service.notify import Notifier
from edge_agent.settings import load_settings
from tests.daemon.agent_process import start_agent, stop_agent, write_config
from tests.daemon.test_crash_recovery import wait_until
from tests.mosquitto import Mosquitto, free_port
from tests.service.helpers import NotifyListener, collapse


def test_ready_watchdog_stopping_sequence(tmp_path: Path) -> None:
    listener = NotifyListener(tmp_path / "notify.sock")
    with Mosquitto(tmp_path / "broker") as broker:
        config = write_config(tmp_path, broker, interval="200ms")
        log = tmp_path / "agent.log"
        env = {"NOTIFY_SOCKET": listener.env_value, "WATCHDOG_USEC": "1000000"}
        agent = start_agent(config, log, extra_env=env)
        try:
            assert wait_until(lambda: len(listener.times_of("WATCHDOG=1")) >= 3, 30), log.read_text()[-3000:]
        finally:
            code = stop_agent(agent)
            listener.close()
    assert code == 0, log.read_text()[-3000:]
    assert collapse(listener.sequence()) == ["READY", "WATCHDOG", "STOPPING"], listener.texts()
    ready = next(t for t in listener.texts() if t.startswith("READY=1"))
    # READY only once the outbox is open and both sensors are set up.
    assert "STATUS=sensors: 2 ok; pending" in ready, ready
    assert (tmp_path / "state" / "outbox.db").exists()


def test_pings_stop_while_the_event_loop_is_blocked(tmp_path: Path) -> None:
    listener = NotifyListener(tmp_path / "notify.sock")
    config = write_config(tmp_path, SimpleNamespace(port=free_port()), interval="100ms")  # type: ignore[arg-type]
    settings = load_settings(config, environ={})
    notifier = Notifier({"NOTIFY_SOCKET": listener.env_value, "WATCHDOG_USEC": "400000"})
    blocked: list[float] = []

    async def scenario(daemon: Daemon) -> None:
        while len(listener.times_of("WATCHDOG=1")) < 3:
            await asyncio.sleep(0.05)
        start = time.monotonic()
        time.sleep(2.5)  # a driver called on the loop, a busy loop: the whole process is stuck
        blocked.extend((start, time.monotonic()))
        count = len(listener.times_of("WATCHDOG=1"))
        while len(listener.times_of("WATCHDOG=1")) < count + 3:
            await asyncio.sleep(0.05)
        daemon.request_stop()

    async def main() -> None:
        daemon = Daemon(settings, notifier=notifier)
        async with asyncio.timeout(60):
            await asyncio.gather(daemon.run(), scenario(daemon))

    try:
        asyncio.run(main())
    finally:
        listener.close()
    start, end = blocked
    during = [t for t in listener.times_of("WATCHDOG=1") if start + 0.5 < t < end]
    assert during == [], "a blocked loop must not ping"
    assert any(t > end for t in listener.times_of("WATCHDOG=1")), "pings resume with the loop"
    assert collapse(listener.sequence()) == ["READY", "WATCHDOG", "STOPPING"]
