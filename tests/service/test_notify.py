"""sd_notify without libsystemd: datagrams to $NOTIFY_SOCKET, path or abstract."""

from __future__ import annotations

import asyncio
import itertools
import os
from pathlib import Path

from edge_agent.service.notify import Notifier
from edge_agent.service.watchdog import ProgressMonitor, keep_alive
from tests.daemon.test_crash_recovery import wait_until
from tests.service.helpers import NotifyListener, collapse


def test_messages_reach_a_path_socket(tmp_path: Path) -> None:
    listener = NotifyListener(tmp_path / "notify.sock")
    try:
        n = Notifier({"NOTIFY_SOCKET": listener.env_value})
        assert n.enabled
        assert n.ready("sensors: 2 ok")
        assert n.reloading()
        assert n.status("line one\nline two")  # one line, never a second assignment
        assert n.stopping()
        assert wait_until(lambda: len(listener.texts()) == 4, 10)
        ready, reloading, status, stopping = listener.texts()
        assert ready == "READY=1\nSTATUS=sensors: 2 ok"
        key, usec = reloading.split("\n")[1].split("=")
        assert reloading.startswith("RELOADING=1\n") and key == "MONOTONIC_USEC" and int(usec) > 0
        assert status == "STATUS=line one line two"
        assert stopping == "STOPPING=1"
    finally:
        listener.close()


def test_messages_reach_an_abstract_socket() -> None:
    listener = NotifyListener(abstract=f"edge-agent-test-{os.getpid()}")
    try:
        assert Notifier({"NOTIFY_SOCKET": listener.env_value}).watchdog()
        assert wait_until(lambda: listener.texts() == ["WATCHDOG=1"], 10)
    finally:
        listener.close()


def test_without_systemd_everything_is_a_no_op() -> None:
    n = Notifier({})
    assert not n.enabled and n.watchdog_interval is None
    assert not n.ready() and not n.watchdog() and not n.stopping()


def test_a_vanished_socket_is_not_fatal(tmp_path: Path) -> None:
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert n.watchdog() is False  # logged once, never raised
    assert Notifier({"NOTIFY_SOCKET": "relative/path"}).enabled is False


def test_watchdog_interval_is_half_of_watchdog_usec_for_this_pid_only() -> None:
    assert Notifier({"WATCHDOG_USEC": "30000000"}).watchdog_interval == 15.0
    assert Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}).watchdog_interval == 15.0
    assert Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}).watchdog_interval is None
    assert Notifier({"WATCHDOG_USEC": "garbage"}).watchdog_interval is None
    assert Notifier({"WATCHDOG_USEC": "0"}).watchdog_interval is None


def test_pings_stop_while_a_stage_stalls_and_resume_after(tmp_path: Path) -> None:
    listener = NotifyListener(tmp_path / "notify.sock")
    monitor = ProgressMonitor()
    state = {"progress": 0, "stalled": False}

    async def main() -> None:
        notifier = Notifier({"NOTIFY_SOCKET": listener.env_value, "WATCHDOG_USEC": "100000"})
        monitor.watch("stage", 0.3, lambda: state["progress"])
        pinger = asyncio.create_task(keep_alive(notifier, monitor, lambda: "fine"))

        async def worker() -> None:
            while True:
                if not state["stalled"]:
                    state["progress"] += 1
                await asyncio.sleep(0.02)

        work = asyncio.create_task(worker())
        await asyncio.sleep(0.5)
        state["stalled"] = True  # the loop is alive, the stage is not
        await asyncio.sleep(1.5)
        stalled_at = listener.times_of("WATCHDOG=1")
        state["stalled"] = False
        await asyncio.sleep(0.5)
        for task in (pinger, work):
            task.cancel()
        await asyncio.gather(pinger, work, return_exceptions=True)
        pings = listener.times_of("WATCHDOG=1")
        assert len(pings) > len(stalled_at), "pings resume once the stage progresses again"
        statuses = [t for t in listener.texts() if t.startswith("STATUS=STALLED")]
        assert statuses and "stage" in statuses[0]

    try:
        asyncio.run(main())
        seq = collapse(listener.sequence())
        assert seq == ["WATCHDOG"]
        pings = listener.times_of("WATCHDOG=1")
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        assert max(gaps) >= 1.0, f"no gap in the pings while the stage was stalled: {gaps}"
    finally:
        listener.close()
