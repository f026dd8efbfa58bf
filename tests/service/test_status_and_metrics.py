"""``edge-agent status`` and ``/metrics`` against a real running daemon (a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from edge_agent.service.status_server import StatusUnavailable, read_status, status_socket
from tests.daemon.agent_process import start_agent, stop_agent, write_config
from tests.daemon.test_crash_recovery import wait_until
from tests.mosquitto import Mosquitto


def status_now(state_dir: Path) -> dict | None:  # type: ignore[type-arg]
    try:
        return read_status(status_socket(state_dir))
    except StatusUnavailable:
        return None


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "160", "PATH": "/usr/bin:/bin"},
    )


def test_status_command_and_metrics_of_a_running_daemon(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with Mosquitto(tmp_path / "broker") as broker:
        config = write_config(tmp_path, broker, interval="100ms")
        with config.open("a") as f:  # a sensor test, so that test results are counted too
            f.write(
                '\n[[tests]]\nname = "cabinet-range"\nsensor = "cabinet"\nkind = "range"\nschedule = "1s"\n'
            )
            f.write("limits = { temperature_c = [-40, 125] }\n")
        log = tmp_path / "agent.log"
        agent = start_agent(config, log)
        try:

            def flowing() -> bool:
                snap = status_now(state)
                return bool(
                    snap
                    and snap["uplink"]["state"] == "connected"
                    and snap["uplink"]["acked_events"] >= 10
                    and all(s["reads"] >= 5 for s in snap["sensors"])
                )

            def tested() -> bool:
                with urllib.request.urlopen(status_now(state)["metrics"], timeout=10) as response:  # type: ignore[index]
                    return (
                        'edge_agent_sensor_test_results_total{sensor="cabinet",status="pass"}'
                        in response.read().decode()
                    )

            assert wait_until(flowing, 30), log.read_text()[-3000:]
            assert wait_until(tested, 30), log.read_text()[-3000:]
            human = cli("status", "--config", str(config))
            as_json = cli("status", "--json", "--config", str(config))
            # The file broken after the start (a rejected reload): the daemon still answers.
            good = config.read_text()
            config.write_text(good + "\n[bogus]\nx = 1\n")
            edited = cli("status", "--config", str(config))
            config.write_text(good)
            snap = json.loads(as_json.stdout)
            with urllib.request.urlopen(snap["metrics"], timeout=10) as response:
                exposition = response.read().decode()
        finally:
            code = stop_agent(agent)
    assert code == 0, log.read_text()[-3000:]

    assert human.returncode == 0, human.stderr
    for word in ("crash-test", "climate", "cabinet", "bme280", "ok", "outbox", "connected", "clock"):
        assert word in human.stdout, (word, human.stdout)
    assert as_json.returncode == 0
    assert edited.returncode == 0 and "climate" in edited.stdout, edited.stderr
    assert "invalid now" in edited.stderr and "last valid configuration" in edited.stderr
    assert [s["name"] for s in snap["sensors"]] == ["climate", "cabinet"]
    assert all(s["health"] == "ok" and s["last_reading_age_s"] < 10 for s in snap["sensors"])
    assert snap["outbox"]["path"] == str(state / "outbox.db") and snap["state"] == "running"
    assert snap["clock"] == {"check": "none", "state": "synced"}

    families = {f.name: f for f in text_string_to_metric_families(exposition)}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples
    }
    assert samples[("edge_agent_build_info", (("python", sys.version.split()[0]), ("version", "0.1.0")))] == 1
    assert samples[("edge_agent_sensor_readings_total", (("sensor", "climate"),))] >= 5
    assert samples[("edge_agent_uplink_connected", ())] == 1
    assert samples[("edge_agent_clock_synced", ())] == 1
    assert samples[("edge_agent_outbox_pending_events", ())] >= 0
    assert samples[("edge_agent_outbox_pending_bytes", ())] >= 0
    assert samples[("edge_agent_outbox_evicted_events_total", (("reason", "size_cap"),))] == 0
    assert samples[("edge_agent_publish_latency_seconds_count", ())] >= 1
    assert samples[("edge_agent_events_total", (("kind", "reading"),))] >= 10
    assert samples[("edge_agent_event_loop_responsive", ())] == 1
    assert samples[("edge_agent_sensor_health", (("sensor", "cabinet"), ("state", "ok")))] == 1
    assert samples[("edge_agent_sensor_test_results_total", (("sensor", "cabinet"), ("status", "pass")))] >= 1
    for name in (
        "edge_agent_sensor_errors",
        "edge_agent_sensor_test_results",
        "edge_agent_uplink_acked_events",
    ):
        assert name in families, name
    assert families["edge_agent_publish_latency_seconds"].type == "histogram"
    assert [name for name, _ in samples if name.endswith("_created")] == [], "timestamps read as counts"

    gone = cli("status", "--config", str(config))
    assert gone.returncode == 3
    assert "not running" in gone.stderr
    assert not status_socket(state).exists(), "a clean stop removes the socket"


def test_status_socket_answering_garbage_is_a_clear_error(tmp_path: Path) -> None:
    import socket
    import threading

    path = tmp_path / "status.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def answer() -> None:
        conn, _ = server.accept()
        conn.sendall(b'{"truncated": ')
        conn.close()

    threading.Thread(target=answer, daemon=True).start()
    try:
        read_status(path, timeout=5)
    except StatusUnavailable as exc:
        assert "not JSON" in str(exc)
    else:
        raise AssertionError("a truncated reply must be refused")
    finally:
        server.close()
