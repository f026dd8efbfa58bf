"""Logs: key=value or JSON lines, repeated errors rate-limited, the MQTT password never shown."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.logging_setup import RepeatFilter, configure_logging
from edge_agent.settings import LoggingSettings
from tests.daemon.agent_process import start_agent, stop_agent, write_config
from tests.daemon.test_crash_recovery import wait_until
from tests.mosquitto import Mosquitto

PASSWORD = "pa55-Wörd-7c1f"


@pytest.fixture
def root_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_identical_errors_are_rate_limited_and_counted() -> None:
    now = [0.0]
    f = RepeatFilter(60.0, clock=lambda: now[0])

    def record(msg: str, *args: object, level: int = logging.ERROR) -> logging.LogRecord:
        return logging.LogRecord("edge_agent.x", level, __file__, 1, msg, args, None)

    assert f.filter(record("sensor %s: %s", "climate", "nack"))
    assert not any(f.filter(record("sensor %s: %s", "climate", "nack")) for _ in range(50))
    assert f.filter(record("sensor %s: %s", "cabinet", "nack")), "other arguments: another message"
    assert f.filter(record("an info line", level=logging.INFO)) and f.filter(
        record("an info line", level=logging.INFO)
    )
    now[0] = 61.0
    again = record("sensor %s: %s", "climate", "nack")
    assert f.filter(again) and again.repeated == 50  # type: ignore[attr-defined]
    assert f.suppressed == 50


def test_key_value_and_json_lines_with_secrets_masked(root_restored: None) -> None:
    out = io.StringIO()
    configure_logging(LoggingSettings(format="text"), secrets=[PASSWORD], stream=out)
    logging.getLogger("edge_agent.test").warning("connecting with %s\nand more", PASSWORD)
    line = out.getvalue()
    assert line.count("\n") == 1 and PASSWORD not in line and "***" in line
    assert "level=warning logger=edge_agent.test msg=" in line

    out = io.StringIO()
    configure_logging(LoggingSettings(format="json", level="debug"), secrets=[PASSWORD], stream=out)
    try:
        raise ValueError(f"bad password {PASSWORD}")
    except ValueError:
        logging.getLogger("edge_agent.test").exception("failed")
    body = json.loads(out.getvalue())
    assert body["level"] == "error" and body["msg"] == "failed" and "***" in body["exc"]
    assert PASSWORD not in out.getvalue()


def test_the_daemon_never_logs_the_mqtt_password(tmp_path: Path) -> None:
    with Mosquitto(tmp_path / "broker") as broker:
        config = write_config(
            tmp_path,
            broker,
            interval="100ms",
            mqtt_extra=f'username = "crash-test"\npassword = "{PASSWORD}"\nport_typo_on_purpose = 1',
        )
        log = tmp_path / "agent.log"
        agent = start_agent(config, log)  # invalid config: every problem is printed
        assert agent.wait(30) == 78
        config.write_text(config.read_text().replace("port_typo_on_purpose = 1", "").replace("[logging]", ""))
        with config.open("a") as f:
            f.write('\n[logging]\nlevel = "debug"\nformat = "json"\n')
        agent = start_agent(config, log)
        try:
            assert wait_until(lambda: "MQTT: connected" in log.read_text(), 30), log.read_text()[-3000:]
        finally:
            assert stop_agent(agent) == 0
    text = log.read_text()
    assert PASSWORD not in text
    assert PASSWORD.encode() not in log.read_bytes()
    assert '"level": "debug"' in text, "debug lines (paho's included) were written and checked too"
