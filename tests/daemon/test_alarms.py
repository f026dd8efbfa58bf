"""The real daemon and a real broker: the default config's alarm goes raise → remind → clear
(one id), status and /metrics show it while open, and a CLI test run becomes an event."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from edge_agent.service.status_server import read_status, status_socket
from tests.daemon.agent_process import Subscriber, start_agent, stop_agent, write_config
from tests.daemon.test_crash_recovery import wait_until
from tests.mosquitto import Mosquitto

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "config" / "edge-agent.toml"


def default_test(name: str) -> str:
    """The ``[[tests]]`` table ``name`` of the shipped config, verbatim but for a 1 s schedule."""
    tables = DEFAULT_CONFIG.read_text().split("[[tests]]")[1:]
    (table,) = [t for t in tables if re.search(rf'^name = "{name}"', t, re.M)]
    table = table.split("\n[")[0]  # up to the next section
    assert "alarm = true" in table
    return "\n[[tests]]" + re.sub(r'schedule = "[^"]+"', 'schedule = "1s"', table)


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_default_alarm_raises_reminds_and_clears(tmp_path: Path) -> None:
    with Mosquitto(tmp_path / "broker") as broker:
        config = write_config(tmp_path, broker, interval="200ms")
        text = config.read_text().replace('id = "crash-test"', 'id = "dev-a"')
        text = text.replace("[[sensors]]", '[alarms]\nremind_every = "1s"\n\n[[sensors]]', 1)
        config.write_text(text + default_test("climate-range"))
        sub = Subscriber(broker, "dev-a")
        log = tmp_path / "agent.log"
        agent = start_agent(config, log)
        try:

            def alarms() -> list[dict[str, Any]]:
                return [e["data"] for e in sub.of_kind("alarm")]

            def runs() -> list[dict[str, Any]]:
                return [e["data"] for e in sub.of_kind("test_result")]

            assert wait_until(lambda: any(r["status"] == "pass" for r in runs()), 30), log.read_text()[-3000:]
            assert alarms() == []
            # +80 °C on the BME280: climate-range fails from now on.
            saved = cli(config, "calibrate", "climate", "-q", "temperature_c",
                        "--reference", "100", "--reading", "20", "--yes")  # fmt: skip
            assert saved.returncode == 0, saved.stderr
            assert wait_until(lambda: sum(a["state"] == "reminder" for a in alarms()) >= 2, 30), (
                log.read_text()[-3000:]
            )
            snap = read_status(status_socket(tmp_path / "state"))  # what `edge-agent status` shows
            (open_alarm,) = snap["alarms"]
            assert open_alarm["test"] == "climate-range" and open_alarm["sensor"] == "climate"
            with urllib.request.urlopen(snap["metrics"], timeout=10) as response:
                scraped = response.read().decode()
            assert 'edge_agent_open_alarms{code="sensor_test_failed",sensor="climate"} 1.0' in scraped

            # A technician's run from the CLI is recorded too (trigger cli).
            ran = cli(config, "test", "run", "climate-range")
            assert ran.returncode == 1, ran.stdout + ran.stderr  # the same calibration applies: it fails
            assert wait_until(lambda: any(r["trigger"] == "cli" for r in runs()), 20), log.read_text()[-3000:]
            spool = tmp_path / "state" / "spool"
            assert wait_until(lambda: not list(spool.glob("*.json")), 10)  # committed, then deleted

            reset = cli(config, "calibration", "reset", "climate")
            assert reset.returncode == 0, reset.stderr
            assert wait_until(lambda: any(a["state"] == "cleared" for a in alarms()), 30), log.read_text()[
                -3000:
            ]
        finally:
            code = stop_agent(agent)
            sub.close()
    assert code == 0, log.read_text()[-3000:]
    states = [a["state"] for a in alarms()]
    assert states[0] == "raised" and states[-1] == "cleared" and states.count("raised") == 1
    assert set(states[1:-1]) == {"reminder"} and len(states) >= 4
    assert len({a["alarm_id"] for a in alarms()}) == 1
    assert [a["reminders"] for a in alarms()][1:-1] == list(range(1, len(states) - 1))
    failing = [r for r in runs() if r["status"] == "fail"]
    assert len(failing) >= 2, "the test failed on every run, but alarmed once"
