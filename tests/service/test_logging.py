"""Logs: key=value or JSON lines, repeated errors rate-limited, the MQTT password never shown."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.service.logs import RepeatFilter, configure_logging
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


@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize("password", ['pa"ss-w0rd', "back\\slash-pw", 'tab\tand"quote\\'])
def test_a_secret_that_escaping_changes_is_masked_too(root_restored: None, fmt: str, password: str) -> None:
    """Quoting (msg=\"…\", JSON) and repr() escape a " or a \\: the escaped forms are masked too."""
    out = io.StringIO()
    configure_logging(LoggingSettings(format=fmt), secrets=[password], stream=out)  # type: ignore[arg-type]
    log = logging.getLogger("edge_agent.test")
    log.warning("plain %s", password)
    log.warning("in a repr %r", {"password": password})
    try:
        raise ValueError(password)
    except ValueError:
        log.exception("failed")
    text = out.getvalue()
    escaped = {password, json.dumps(password)[1:-1], repr(password)[1:-1], json.dumps(repr(password))[1:-1]}
    assert not [form for form in escaped if form in text], text
    assert text.count("***") >= 3


LOG_EVERY_LEVEL = """
import logging, sys
from edge_agent.service.logs import configure_logging
from edge_agent.settings import LoggingSettings
configure_logging(LoggingSettings(format=sys.argv[1], journal_prefix=sys.argv[2], level="debug"))
log = logging.getLogger("edge_agent.test")
log.critical("c"); log.error("e"); log.warning("w\\nsecond line"); log.info("i"); log.debug("d")
try:
    raise ValueError("multi\\nline")
except ValueError:
    log.exception("boom")
"""


def log_every_level(tmp_path: Path, fmt: str, prefix: str, *, journal_is_stdout: bool) -> list[str]:
    """Runs LOG_EVERY_LEVEL with stdout to a file and $JOURNAL_STREAM naming it (or another file)."""
    out, other = tmp_path / "stdout", tmp_path / "other"
    out.touch()
    other.touch()
    named = os.stat(out if journal_is_stdout else other)
    env = {**os.environ, "JOURNAL_STREAM": f"{named.st_dev}:{named.st_ino}"}
    with out.open("w") as stdout:
        subprocess.run(
            [sys.executable, "-c", LOG_EVERY_LEVEL, fmt, prefix], stdout=stdout, env=env, check=True
        )
    return out.read_text().splitlines()


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_lines_to_the_journal_start_with_their_syslog_priority(tmp_path: Path, fmt: str) -> None:
    lines = log_every_level(tmp_path, fmt, "auto", journal_is_stdout=True)
    assert [line[:3] for line in lines] == ["<2>", "<3>", "<4>", "<6>", "<7>", "<3>"], lines
    # One physical line per record: journald would split the warning and the traceback otherwise.
    assert "second line" in lines[2] and "Traceback" in lines[5] and "ValueError: multi" in lines[5]
    if fmt == "json":
        assert json.loads(lines[5][3:])["exc"].endswith("ValueError: multi\nline")
    else:
        assert lines[2].startswith("<4>level=warning ") and "ts=" not in lines[2], "journald stamps the time"
    never = log_every_level(tmp_path, fmt, "never", journal_is_stdout=True)
    assert len(never) == 6 and not any(line.startswith("<") for line in never)


def test_no_prefix_when_stdout_is_not_the_journal_it_inherited(tmp_path: Path) -> None:
    lines = log_every_level(tmp_path, "text", "auto", journal_is_stdout=False)
    assert len(lines) == 6 and all(line.startswith("ts=") for line in lines), lines
    forced = log_every_level(tmp_path, "text", "always", journal_is_stdout=False)
    assert [line[:6] for line in forced] == [f"<{n}>ts=" for n in (2, 3, 4, 6, 7, 3)], forced


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


def test_exit_75_is_a_log_line_like_every_other(tmp_path: Path) -> None:
    """Another process holds the outbox: the refusal is one structured line, exit 75."""
    import fcntl

    state = tmp_path / "state"
    state.mkdir()
    config = tmp_path / "edge-agent.toml"
    config.write_text(
        f'[device]\nid = "locked"\nclock_check = "none"\n[storage]\nstate_dir = "{state}"\n'
        '[metrics]\nenabled = false\n[logging]\nformat = "json"\n'
    )
    fd = os.open(state / "outbox.db.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_", "JOURNAL_STREAM"))}
        result = subprocess.run(
            [sys.executable, "-m", "edge_agent", "run", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
    finally:
        os.close(fd)
    assert result.returncode == 75, result.stdout + result.stderr
    assert result.stderr == "", "nothing bare on stderr"
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    last = lines[-1]
    assert last["level"] == "critical" and last["logger"] == "edge_agent.daemon", last
    assert "exiting 75" in last["msg"] and "in use by another process" in last["msg"], last
