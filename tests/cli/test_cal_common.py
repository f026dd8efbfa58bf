"""Sensors opened by the field CLI: Ctrl-C always reaches the main thread."""

from __future__ import annotations

import re
import signal
import threading
from pathlib import Path

from edge_agent.cli.cal_common import opened_sensors
from edge_agent.settings import load_settings
from tests.conftest import DEFAULT_CONFIG


def sigint_blocked(native_id: int | None) -> bool:
    status = Path(f"/proc/self/task/{native_id}/status").read_text()
    found = re.search(r"^SigBlk:\s*([0-9a-f]+)$", status, re.MULTILINE)
    assert found is not None
    return bool(int(found.group(1), 16) & (1 << (signal.SIGINT - 1)))


def test_sensor_workers_leave_ctrl_c_to_the_main_thread() -> None:
    # A worker that could take SIGINT left the main thread blocked in input(): Ctrl-C at a
    # wizard prompt then did nothing until Enter (the Ctrl-C test hung so once under load).
    settings = load_settings(DEFAULT_CONFIG)
    climate = settings.sensor("climate")
    assert climate is not None
    with opened_sensors([climate]) as (opened, problems, _):
        assert problems == {}
        worker = opened["climate"].worker._thread
        assert worker.is_alive() and sigint_blocked(worker.native_id)
        assert not sigint_blocked(threading.main_thread().native_id)
