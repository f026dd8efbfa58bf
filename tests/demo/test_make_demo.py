"""``make demo`` end to end (``python -m demo``, what the target runs): the real Mosquitto,
auth, ingest and three enrolled agents; events stored; Ctrl-C (SIGINT) leaves no process
and no listening port; a second run reuses the enrolled devices; no Mosquitto: one line."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from demo.processes import port_open
from tests.conftest import REPO, require_binary
from tests.daemon.agent_process import wait_until
from tests.mosquitto import free_port

OFFSETS = (80, 90, 883, 884)


def _base() -> int:
    """A base whose four demo ports are free (ports from free_port are ephemeral-range)."""
    while True:
        base = free_port() % 20000 + 20000
        if not any(port_open(base + o) for o in OFFSETS):
            return base


def _ours(root: Path) -> list[int]:
    """Every process whose command line names the demo's folder (all the demo's children do)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if str(root).encode() in cmdline:
                pids.append(int(entry.name))
    return pids


def _stored(db: Path) -> dict[str, int]:
    if not db.exists():
        return {}
    with sqlite3.connect(db) as conn:
        try:
            return dict(
                conn.execute("SELECT device_id, count(*) FROM event_ids GROUP BY device_id").fetchall()
            )
        except sqlite3.OperationalError:  # the schema is not there yet
            return {}


def _run_once(root: Path, base: int, more_than: dict[str, int]) -> str:
    env = {**os.environ, "DEMO_DIR": str(root), "DEMO_PORT_BASE": str(base)}
    out = root.parent / "demo.out"
    with out.open("wb") as sink:
        demo = subprocess.Popen([sys.executable, "-m", "demo"], cwd=REPO, env=env, stdout=sink, stderr=sink)
    try:
        db = root / "ingest" / "ingest.db"
        devices = ("demo-01", "demo-02", "demo-03")
        assert wait_until(
            lambda: (
                all(_stored(db).get(d, 0) > more_than.get(d, 0) for d in devices) or demo.poll() is not None
            ),
            30,
        ), out.read_text()
        assert demo.poll() is None, out.read_text()
        assert 'curl -s -H "Authorization: Bearer' in out.read_text()
        demo.send_signal(signal.SIGINT)
        assert demo.wait(20) == 0, out.read_text()
    finally:
        if demo.poll() is None:
            demo.kill()
    assert _ours(root) == []
    assert not any(port_open(base + o) for o in OFFSETS)
    return out.read_text()


def test_demo_runs_stops_clean_and_reuses_its_state(tmp_path: Path) -> None:
    require_binary("mosquitto", "make demo needs mosquitto (apt install mosquitto)")
    root, base = tmp_path / "demo", _base()
    first = _run_once(root, base, {})
    assert "first run" in first and "stopped: every process" in first
    stored = _stored(root / "ingest" / "ingest.db")
    second = _run_once(root, base, stored)  # new events from the same, still-enrolled devices
    assert "reusing the demo's state" in second


def test_without_mosquitto_one_line_saying_how_to_install_it(tmp_path: Path) -> None:
    env = {**os.environ, "DEMO_DIR": str(tmp_path / "demo"), "MOSQUITTO": str(tmp_path / "no-such-mosquitto")}
    done = subprocess.run(
        [sys.executable, "-m", "demo"], cwd=REPO, env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 69
    assert done.stderr.strip().splitlines() == [
        "make demo: needs the Mosquitto broker, which is not installed: sudo apt install mosquitto "
        "(Debian/Ubuntu; brew install mosquitto on macOS), then make demo again"
    ]
