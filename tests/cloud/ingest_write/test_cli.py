"""``edge-ingest config check``, ``db upgrade``, ``tail``; ``serve`` with its HTTP API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from edge_cloud.ingest.cli import app
from edge_cloud.ingest.settings import load_ingest_settings
from edge_cloud.ingest.store import Store
from tests.cloud.ingest_write.helpers import Device, work
from tests.cloud.ingest_write.processes import ingest_config
from tests.cloud.ingest_write.publisher import wait_for
from tests.conftest import REPO
from tests.mosquitto import Mosquitto, free_port

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_ingest_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("INGEST_") or key == "EDGE_INGEST_CONFIG":
            monkeypatch.delenv(key)


def test_the_shipped_config_is_valid() -> None:
    r = runner.invoke(app, ["config", "check", "-c", str(REPO / "config" / "edge-ingest.toml")])
    assert r.exit_code == 0, r.output
    assert "configuration valid" in r.output


def test_config_problems_are_one_line_each_with_file_or_variable_and_field_and_exit_78(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "edge-ingest.toml"
    path.write_text('[consumer]\nbatch_max_event = 10\ndevices = "some"\n[mqtt]\nreceive_maximum = 0\n')
    monkeypatch.setenv("INGEST_MQTT__PORT", "eighty")
    r = runner.invoke(app, ["config", "check", "-c", str(path)])
    assert r.exit_code == 78
    lines = [line for line in r.output.splitlines() if line.strip().startswith("✗")]
    assert len(lines) == 4, r.output
    assert any("environment variable INGEST_MQTT__PORT: mqtt.port" in line for line in lines)
    assert any(
        f"{path}: consumer.batch_max_event: unknown key" in line and "batch_max_events" in line
        for line in lines
    )
    assert any(f"{path}: consumer.devices" in line for line in lines)
    assert any(f"{path}: mqtt.receive_maximum" in line for line in lines)
    monkeypatch.delenv("INGEST_MQTT__PORT")
    path.write_text('[consumer]\ndevices = "known"\n')
    r = runner.invoke(app, ["db", "upgrade", "-c", str(path)])
    assert r.exit_code == 78 and "auth.api_url and auth.api_key" in r.output


def test_db_upgrade_migrates(tmp_path: Path, database_url: str) -> None:
    path = tmp_path / "edge-ingest.toml"
    path.write_text(f'[database]\nurl = "{database_url}"\n')
    r = runner.invoke(app, ["db", "upgrade", "-c", str(path)])
    assert r.exit_code == 0, r.output
    assert "database at revision 0003" in r.output
    if database_url.startswith("postgresql"):
        assert "readings partitions created: readings_p" in r.output


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "edge-ingest.toml"
    path.write_text(f'state_dir = "{tmp_path}"\n[database]\nurl = "{url}"\n')
    return path


def test_tail_prints_the_last_readings_in_80_columns(
    tmp_path: Path, database_url: str, engine: Engine
) -> None:
    dev = Device("tail-1")
    events = dev.readings(5)
    events[-1]["data"] = {"relative_humidity_pct": 42.0068359375, "cal": {"relative_humidity_pct": 7}}
    events[-1]["clock"] = "unsynced"
    Store(engine, quarantine_rows=10).write(
        work(dev.message(events), Device("other").message(Device("other").readings(3)))
    )
    r = runner.invoke(
        app, ["tail", "tail-1", "-n", "3", "--no-follow", "-c", str(_config(tmp_path, database_url))]
    )
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert len(lines) == 3
    assert lines[-1].split() == [
        events[-1]["ts"] + "~",
        "climate",
        "relative_humidity_pct",
        "42.00683594",
        "cal",
        "7",
    ]
    assert lines[0].split()[2] == "pressure_pa" and lines[1].split()[2] == "temperature_c"  # by name
    assert all(len(line) <= 80 for line in lines), lines


def test_tail_shows_events_of_one_instant_in_its_order_and_never_twice(engine: Engine) -> None:
    """Two sensors' events at the same time, in one message: the lines shown first are in
    the order ``follow`` goes on from (event, then quantity), so none comes back later."""
    from datetime import timedelta

    from edge_cloud.ingest import tail as tailing

    dev = Device("tail-3")
    first = dev.event("reading", {"a_v": 1.0, "z_v": 2.0}, sensor="analog")
    dev.t -= timedelta(seconds=1)  # the same ts (the same millisecond: UUIDv7s in random order)
    second = dev.event("reading", {"m_c": 3.0}, sensor="climate")
    assert first["ts"] == second["ts"]
    Store(engine, quarantine_rows=10).write(work(dev.message([first, second])))
    polls = tailing.follow(engine, "tail-3", backlog=3, sleep=lambda _s: None)
    shown = next(polls)
    by_id = sorted([first, second], key=lambda e: str(e["id"]))
    assert [(line.sensor, line.quantity) for line in shown] == [
        (e["sensor"], q) for e in by_id for q in sorted(e["data"])
    ]
    assert next(polls) == []


def test_tail_follows_what_is_stored_and_stops_quietly_when_its_reader_goes(
    tmp_path: Path, database_url: str, engine: Engine
) -> None:
    config = _config(tmp_path, database_url)
    dev = Device("tail-2")
    store = Store(engine, quarantine_rows=10)
    store.write(work(dev.message(dev.readings(1))))
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    command = [
        sys.executable,
        "-m",
        "edge_cloud.ingest",
        "tail",
        "tail-2",
        "-n",
        "1",
        "--interval",
        "0.1",
        "-c",
        str(config),
    ]
    tail = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        assert tail.stdout is not None
        first = tail.stdout.readline()
        assert "temperature_c" in first  # the last of the first event's two, by name
        store.write(work(dev.message(dev.readings(2))))
        got = [tail.stdout.readline().split()[1:3] for _ in range(4)]
        assert got == [["climate", "pressure_pa"], ["climate", "temperature_c"]] * 2
        tail.send_signal(signal.SIGINT)
        assert tail.wait(10) == 0
    finally:
        if tail.poll() is None:
            tail.kill()
    # Piped into head: the reader closes early, tail ends without a traceback.
    store.write(work(dev.message(dev.readings(50))))
    piped = subprocess.run(
        f"{sys.executable} -m edge_cloud.ingest tail tail-2 -n 100 --no-follow -c {config} | head -2",
        shell=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert len(piped.stdout.splitlines()) == 2
    assert "Traceback" not in piped.stderr, piped.stderr


def test_serve_runs_the_consumer_and_uvicorn_in_one_process_and_stops_on_sigterm(
    tmp_path: Path, database_url: str, broker: Mosquitto
) -> None:
    config = ingest_config(tmp_path, database_url, broker)
    port = free_port()
    config.write_text(config.read_text().replace("[server]\nport = ", f"[server]\nport = {port}\n# was "))
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "edge_cloud.ingest", "serve", "-c", str(config)], stdout=out, stderr=out
        )
    try:

        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    return bool(
                        json.loads(r.read()) == {"ready": True, "checks": {"database": True, "broker": True}}
                    )
            except OSError:
                return False

        wait_for(ready, 30, "/readyz to say database and broker")

        def metrics() -> bytes:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                return bytes(r.read())

        assert b"edge_ingest_broker_connected 1.0" in metrics()
        # The command client is started beside the consumer, on its own connection.
        wait_for(lambda: b"edge_ingest_commands_connected 1.0" in metrics(), 30, "the command client")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            assert json.loads(r.read()) == {"status": "ok"}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json", timeout=2) as r:
            paths = json.loads(r.read())["paths"]
        assert {
            "/v1/import",
            "/v1/devices/{device_id}/readings",
            "/v1/devices/{device_id}/commands/{name}",
        } <= set(paths)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(
                f"http://127.0.0.1:{port}/v1/import?device_id=site-1", data=b"{}", timeout=5
            )
        assert refused.value.code == 401, "no token, nothing stored"
        broker.stop()
        wait_for(lambda: not ready(), 30, "/readyz to see the broker gone")
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, log.read_text()[-2000:]
    finally:
        if process.poll() is None:
            process.kill()


def test_behind_tls_the_share_group_is_the_secret_one(tmp_path: Path) -> None:
    """A well-known group lets any device take a share of the events (tests/cloud/test_broker_services.py),
    so a TLS broker needs the group edge-auth service-cert wrote."""
    tls = '[mqtt.tls]\nca_file = "ca.pem"\ncert_file = "ingest.pem"\nkey_file = "ingest.key"\n'
    path = tmp_path / "edge-ingest.toml"
    path.write_text(tls)
    r = runner.invoke(app, ["config", "check", "-c", str(path)])
    assert r.exit_code == 78 and "share_group_file" in r.output, r.output

    (tmp_path / "ingest.share-group").write_text("ingest-0123456789abcdef0123456789abcdef\n")
    path.write_text('[mqtt]\nshare_group_file = "ingest.share-group"\n' + tls)
    settings = load_ingest_settings(path)
    assert settings.mqtt.share_group == "ingest-0123456789abcdef0123456789abcdef"

    (tmp_path / "ingest.share-group").write_text("$share/oops\n")
    r = runner.invoke(app, ["config", "check", "-c", str(path)])
    assert r.exit_code == 78 and "not a share group" in r.output, r.output
