"""The real daemon against a broker it cannot use: refused credentials, a CA that is not the broker's.

The documented behaviour (issue 3, docs/PROTOCOL.md): one clear log line per series of
attempts (not one per retry), sampling and buffering go on, nothing crashes; once the
cause is fixed the backlog drains, oldest first, and nothing committed is missing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from edge_agent.outbox import read_stats
from tests.daemon.agent_process import (
    Subscriber,
    left_pending_up_to,
    pending,
    start_agent,
    stop_agent,
    wait_until,
    write_config,
)
from tests.mosquitto import Mosquitto, make_tls_files
from tests.uplink.helpers import write_password_file

DEVICE = "crash-test"


def connect_warnings(log: str) -> list[str]:
    """The WARNING lines saying the daemon cannot connect (debug lines are per retry)."""
    return [
        line
        for line in log.splitlines()
        if ("level=warning" in line or line.startswith("WARNING")) and "cannot connect" in line
    ]


def drained(sub: Subscriber, db: Path, upto: int) -> bool:
    return set(range(1, upto + 1)) <= sub.seqs() and left_pending_up_to(db, upto)


def test_refused_credentials_log_once_keep_buffering_and_drain_after_the_fix(tmp_path: Path) -> None:
    passwords = write_password_file(tmp_path / "passwd", {DEVICE: "right-pw", "observer": "obs-pw"})
    db = tmp_path / "state" / "outbox.db"
    log_file = tmp_path / "agent.log"
    with Mosquitto(tmp_path / "broker", password_file=passwords) as broker:
        sub = Subscriber(broker, DEVICE, username="observer", password="obs-pw")
        wrong = write_config(
            tmp_path, broker, interval="100ms", mqtt_extra=f'username = "{DEVICE}"\npassword = "wrong-pw"'
        )
        agent = start_agent(wrong, log_file)
        try:
            # Several refused attempts (the broker logs each), while events pile up.
            assert wait_until(lambda: broker.log.count("not authorised") >= 4 and pending(db) >= 30, 60), (
                log_file.read_text()[-3000:] + broker.log[-2000:]
            )
            assert agent.poll() is None
            assert not sub.seqs(), "nothing may get through with a wrong password"
            # The technician fixes the password in the config and restarts the daemon.
            assert stop_agent(agent) == 0, "a stop while refused must still be clean"
            buffered = read_stats(db).next_seq - 1
            refused_log = log_file.read_text()
            right = write_config(
                tmp_path, broker, interval="100ms", mqtt_extra=f'username = "{DEVICE}"\npassword = "right-pw"'
            )
            agent = start_agent(right, log_file)
            assert wait_until(lambda: drained(sub, db, buffered), 30), log_file.read_text()[-3000:]
        finally:
            code = stop_agent(agent)
            sub.close()
    assert code == 0
    warnings = connect_warnings(refused_log)
    assert len(warnings) == 1, warnings
    assert "check mqtt.username/mqtt.password" in warnings[0]
    assert "not authori" in warnings[0].lower() or "bad user name or password" in warnings[0].lower()
    readings = [e["seq"] for e in sub.of_kind("reading") if e["seq"] <= buffered]
    assert readings == sorted(readings), "the backlog drains oldest first"
    assert len(readings) >= 25, "sampling went on while the broker refused us"


def test_wrong_ca_logs_once_keeps_buffering_and_drains_when_the_ca_file_is_fixed(tmp_path: Path) -> None:
    real = make_tls_files(tmp_path / "pki-real")
    other = make_tls_files(tmp_path / "pki-other")
    device_ca = tmp_path / "device-ca.pem"
    shutil.copy(other.ca_cert, device_ca)
    db = tmp_path / "state" / "outbox.db"
    log_file = tmp_path / "agent.log"
    with Mosquitto(tmp_path / "broker", tls=real) as broker:
        sub = Subscriber(broker, DEVICE, ca_file=real.ca_cert)
        config = write_config(
            tmp_path, broker, interval="100ms", mqtt_extra=f'[mqtt.tls]\nca_file = "{device_ca}"'
        )
        agent = start_agent(config, log_file)
        try:
            assert wait_until(lambda: pending(db) >= 30, 60), log_file.read_text()[-3000:]
            # Several handshakes were refused by then (reconnect_max is 1 s).
            assert wait_until(lambda: broker.log.count("OpenSSL Error") + broker.log.count("TLS") >= 3, 30), (
                broker.log[-2000:]
            )
            assert agent.poll() is None and not sub.seqs()
            # The right CA is installed in place: read again at the next attempt, no restart.
            shutil.copy(real.ca_cert, device_ca)
            buffered = read_stats(db).next_seq - 1
            assert wait_until(lambda: drained(sub, db, buffered), 30), log_file.read_text()[-3000:]
        finally:
            code = stop_agent(agent)
            sub.close()
    assert code == 0
    log = log_file.read_text()
    warnings = connect_warnings(log)
    assert len(warnings) == 1, warnings
    assert "TLS handshake" in warnings[0] and "certificate verify failed" in warnings[0]
    assert "failed attempt" in log, "the recovery is logged once, with how many attempts it took"
    readings = [e["seq"] for e in sub.of_kind("reading") if e["seq"] <= buffered]
    assert readings == sorted(readings) and len(readings) >= 25
