"""The real daemon: sensor tests on schedule, a calibration picked up without restart, run-test remotely."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.daemon.agent_process import Subscriber, start_agent, stop_agent, write_config
from tests.daemon.test_crash_recovery import wait_until
from tests.mosquitto import Mosquitto
from tests.remote.test_commands import Requester

TESTS = """
[[tests]]
name = "climate-range"
sensor = "climate"
kind = "range"
schedule = "1s"
limits = { temperature_c = [-10, 50] }

[[tests]]
name = "impossible"
sensor = "cabinet"
kind = "range"
schedule = "2s"
alarm = true
limits = { temperature_c = [100, 200] }

[[tests]]
name = "agree"
sensor = "climate"
kind = "agreement"
quantity = "temperature_c"
other = "cabinet"
tolerance = 1.0
"""


def test_tests_on_schedule_calibration_live_and_remote_run_test(tmp_path: Path) -> None:
    with Mosquitto(tmp_path / "broker") as broker:
        config = write_config(tmp_path, broker, interval="200ms")
        config.write_text(config.read_text().replace('id = "crash-test"', 'id = "dev-1"') + TESTS)
        sub = Subscriber(broker, "dev-1")
        log = tmp_path / "agent.log"
        agent = start_agent(config, log)
        try:

            def results(name: str) -> list[dict]:  # type: ignore[type-arg]
                return [e for e in sub.events if e["kind"] == "test_result" and e["data"]["test"] == name]

            assert wait_until(lambda: len(results("climate-range")) >= 2 and results("impossible"), 30), (
                log.read_text()[-3000:]
            )
            ok = results("climate-range")[0]["data"]
            assert ok["status"] == "pass" and ok["trigger"] == "schedule" and ok["sensor"] == "climate"
            bad = results("impossible")[0]
            assert bad["data"]["status"] == "fail" and bad["sensor"] == "cabinet"
            # The alarm is committed after its test result (up to one commit window later).
            assert wait_until(lambda: any(e["kind"] == "alarm" for e in sub.events), 10)
            alarms = [e for e in sub.events if e["kind"] == "alarm"]
            assert alarms[0]["data"]["test"] == "impossible"
            assert not results("agree"), "a test without schedule runs only on demand"

            # A calibration saved by the CLI applies to the running daemon's readings.
            saved = subprocess.run(
                [sys.executable, "-m", "edge_agent", "calibrate", "climate", "-q", "temperature_c",
                 "--reference", "100", "--reading", "20", "--reference-uncertainty", "0.2", "--yes",
                 "--config", str(config)],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert saved.returncode == 0, saved.stderr

            def corrected() -> list[dict]:  # type: ignore[type-arg]
                return [e for e in sub.events if e["kind"] == "reading" and "cal" in e["data"]]

            assert wait_until(lambda: len(corrected()) >= 2, 30), log.read_text()[-3000:]
            reading = corrected()[0]["data"]
            assert reading["cal"] == {"temperature_c": 1} and reading["temperature_c"] > 90
            changes = [
                e
                for e in sub.events
                if e["kind"] == "status" and e["data"].get("event") == "calibration_changed"
            ]
            assert changes and changes[0]["data"]["cal"] == 1 and changes[0]["data"]["offset"] == 80.0
            assert changes[0]["data"]["uncertainty"] == 0.2  # the reference's alone: no spread given

            # The calibrated BME280 now disagrees with the SHT31: the agreement test, run remotely, says so.
            cloud = Requester(broker)
            try:
                cloud.send(
                    "run-test", json.dumps({"test": "agree"}).encode(), "devices/dev-1/responses/x", b"42"
                )
                topic, body, corr = cloud.next(60)
            finally:
                cloud.close()
            assert topic == "devices/dev-1/responses/x" and corr == b"42"
            (result,) = body["result"]["results"]
            assert result["status"] == "fail" and result["trigger"] == "remote"
            assert wait_until(lambda: bool(results("agree")), 20), "a remote run also becomes an event"
        finally:
            code = stop_agent(agent)
            sub.close()
    assert code == 0, log.read_text()[-3000:]
