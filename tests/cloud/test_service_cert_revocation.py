"""Service certificates (the ingest's, service CA) are recorded and revocable: the service
listener's CRL, kept in revoked.json, enforced by a real Mosquitto 2.0.

Before, a leaked ingest key kept connecting on the service listener for a year: nothing
recorded the certificate and the listener had no CRL."""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509
from typer.testing import CliRunner

from edge_cloud.auth import service_certs
from edge_cloud.auth.cli import app
from edge_cloud.auth.errors import BadRequest
from edge_cloud.auth.revocation_record import RECORD_NAME, RESTORE_ACTOR
from edge_cloud.auth.service import AuthService, open_service
from edge_cloud.auth.service_identity import write_service_identity
from edge_cloud.auth.settings import AuthSettings
from edge_cloud.auth.tables import audit_log, service_certificates
from edge_cloud.common.errors import EX_CONFIG
from tests.cloud.broker import AuthWithBroker, Identity, auth_with_broker
from tests.cloud.helpers import ManualClock
from tests.cloud.mqtt_peer import wait_for

ACCEPTED = {0x00, 0x10}


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'auth.db'}"


def _issue(env: AuthWithBroker, folder: str) -> tuple[Identity, str]:
    """A service certificate for the ingest in its own folder, and its serial (hex)."""
    name = env.service.settings.broker.ingest_identity
    out = env.files / folder
    paths = write_service_identity(env.service, out, name, actor="test")
    serial = format(x509.load_pem_x509_certificate(paths[1].read_bytes()).serial_number, "x")
    return Identity(name, out / f"{name}.pem", out / f"{name}.key", out / "ca.pem", service=True), serial


def _config(tmp_path: Path, settings: AuthSettings, extra: str = "") -> Path:
    """A configuration file for the CLI naming the same state as ``settings``."""
    b = settings.broker
    lines = [
        f'state_dir = "{settings.state_dir}"',
        "[database]",
        f'url = "{settings.database.url}"',
        "[broker]",
        f'out_dir = "{b.out_dir}"',
        f"port = {b.port}",
        f"service_port = {b.service_port}",
        *([f'pid_file = "{b.pid_file}"'] if b.pid_file else []),
        extra,
    ]
    path = tmp_path / "edge-auth.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _service_crl(settings: AuthSettings) -> x509.CertificateRevocationList:
    return x509.load_pem_x509_crl((settings.broker.out_dir / "service-crl.pem").read_bytes())


def _reloads(env: AuthWithBroker) -> int:
    return env.broker.log.count("Reloading config")


def test_a_revoked_service_certificate_is_refused_after_reload_and_its_successor_connects(
    tmp_path: Path, sqlite_url: str
) -> None:
    """The attack: a leaked ingest certificate on the service listener.  Rotating the key
    (issue, revoke the rest of the CN) refuses it at its next handshake; its live session
    stays up until the broker restarts (Mosquitto 2.0.11), as the command says."""
    with auth_with_broker(tmp_path, sqlite_url) as env:
        leaked, leaked_serial = _issue(env, "leaked")
        device = env.enroll("dev-a")
        with env.peer(leaked, client_id="ingest@attacker") as attacker, env.peer(device) as dev:
            assert attacker.connect(), env.broker.log
            attacker.subscribe("devices/+/events")
            assert dev.connect()
            successor, new_serial = _issue(env, "successor")
            reloads = _reloads(env)
            config = _config(tmp_path, env.service.settings)
            result = CliRunner().invoke(
                app, ["revoke-service-cert", "--name", "ingest", "--except", new_serial, "-c", str(config)]
            )
            assert result.exit_code == 0, result.output
            out = " ".join(result.output.split())
            assert f"revoked: {leaked_serial} (ingest)" in out
            assert "stays up until Mosquitto restarts" in out and "--restart-broker" in out
            wait_for(lambda: _reloads(env) > reloads, what="the broker reload")
            assert {e.serial_number for e in _service_crl(env.service.settings)} == {int(leaked_serial, 16)}
            assert not env.peer(leaked, client_id="ingest@again").connect(), (
                "a revoked service cert connected"
            )
            with env.peer(successor, client_id="ingest@1") as ingest:
                assert ingest.connect(), env.broker.log
            # Mosquitto 2.0.11: the CRL and SIGHUP leave the open session up; it still reads.
            assert dev.publish("devices/dev-a/events", b"after-revoke") in ACCEPTED
            wait_for(lambda: b"after-revoke" in attacker.received(), what="the open session's delivery")
            assert attacker.disconnects == []
            env.broker.restart()  # what cuts it (--restart-broker runs broker.restart_command)
            wait_for(lambda: bool(attacker.disconnects), what="the session cut by the restart")
        assert not env.peer(leaked, client_id="ingest@attacker").connect()
        with env.peer(successor, client_id="ingest@1") as ingest:
            assert ingest.connect()
        with env.service.engine.connect() as conn:
            rows = [
                (r.action, r.target)
                for r in conn.execute(
                    sa.select(audit_log)
                    .where(audit_log.c.action.like("service_cert.%"))
                    .order_by(audit_log.c.id)
                )
            ]
        assert rows == [
            ("service_cert.issued", leaked_serial),
            ("service_cert.issued", new_serial),
            ("service_cert.revoked", leaked_serial),
        ]


def test_service_revocations_survive_a_database_restored_from_an_older_backup(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Back up, issue one more, revoke both, restore the older database, start: both stay
    on the service CRL and refused (one the restored database never knew), the database
    is told (audited), and the successor issued after the revocation still connects."""
    with auth_with_broker(tmp_path, sqlite_url, cut_sessions=False) as env:
        old, old_serial = _issue(env, "old")
        backup = tmp_path / "backup.db"
        with sqlite3.connect(tmp_path / "auth.db") as live, sqlite3.connect(backup) as copy:
            live.backup(copy)
        unknown, unknown_serial = _issue(env, "after-backup")
        successor, successor_serial = _issue(env, "successor")
        with env.service.transaction() as conn:
            chosen = service_certs.select(conn, name="ingest", keep=[successor_serial])
            revoked_now = service_certs.revoke(conn, chosen, now=env.service.now(), actor="t")
            assert {c.serial for c in revoked_now} == {old_serial, unknown_serial}  # issued in one second
        env.service.broker.apply()
        env.service.close()
        for suffix in ("", "-wal", "-shm"):
            (tmp_path / f"auth.db{suffix}").unlink(missing_ok=True)
        shutil.copyfile(backup, tmp_path / "auth.db")
        reloads = _reloads(env)
        restarted = open_service(env.service.settings)
        try:
            wait_for(lambda: _reloads(env) > reloads, what="the broker reload")
            revoked = {e.serial_number for e in _service_crl(restarted.settings)}
            assert revoked == {int(old_serial, 16), int(unknown_serial, 16)}
            assert not env.peer(old).connect() and not env.peer(unknown).connect()
            with env.peer(successor) as p:
                assert p.connect()
            with restarted.engine.connect() as conn:
                certs = {c.serial: c.revoked_at for c in service_certs.list_certs(conn)}
                restored = [
                    (r.action, r.target)
                    for r in conn.execute(sa.select(audit_log).where(audit_log.c.actor == RESTORE_ACTOR))
                ]
            assert list(certs) == [old_serial] and certs[old_serial] is not None
            assert restored == [("service_cert.revoked", old_serial)]
        finally:
            restarted.close()


def test_the_daily_render_renews_the_service_crl_and_drops_expired_entries(
    tmp_path: Path, database_url: str, clock: ManualClock
) -> None:
    from tests.cloud.helpers import make_settings

    service = open_service(make_settings(tmp_path, database_url), clock=clock)
    try:
        name = service.settings.broker.ingest_identity
        write_service_identity(service, tmp_path / "ingest", name, actor="test")
        with service.transaction() as conn:
            service_certs.revoke(conn, service_certs.select(conn, name=name), now=clock(), actor="test")
        service.broker.apply()
        first = _service_crl(service.settings)
        assert first.is_signature_valid(service.service_ca.key.public_key())
        assert len(list(first)) == 1
        lifetime = service.settings.certificates.crl_lifetime
        assert first.next_update_utc.timestamp() == pytest.approx(clock() + lifetime, abs=1)
        clock.advance(86400)
        service.broker.apply()  # what serve's daily refresh runs
        second = _service_crl(service.settings)
        assert second.next_update_utc.timestamp() == pytest.approx(clock() + lifetime, abs=1)
        assert [e.serial_number for e in second] == [e.serial_number for e in first]
        record = (service.settings.broker.out_dir / RECORD_NAME).read_text()
        assert format(next(iter(first)).serial_number, "x") in record
        clock.advance(366 * 86400)  # the certificate has expired (a year), with a day's grace
        service.broker.apply()
        assert list(_service_crl(service.settings)) == []
    finally:
        service.close()


def _cli(tmp_path: Path, extra: str = "") -> tuple[CliRunner, Path]:
    config = tmp_path / "edge-auth.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n[broker]\nout_dir = "{tmp_path / "broker"}"\nport = 18883\n{extra}'
    )
    runner = CliRunner()
    result = runner.invoke(app, ["init", "-c", str(config)])
    assert result.exit_code == 0, result.output
    return runner, config


def _issued(runner: CliRunner, config: Path, out: Path) -> str:
    result = runner.invoke(app, ["service-cert", "--out", str(out), "-c", str(config)])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("certificate serial "))
    return line.split()[2]


def test_service_certs_lists_serial_name_validity_and_revoked_at_80_columns(tmp_path: Path) -> None:
    runner, config = _cli(tmp_path)
    first = _issued(runner, config, tmp_path / "a")
    second = _issued(runner, config, tmp_path / "b")
    result = runner.invoke(app, ["revoke-service-cert", first, "-c", str(config)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["service-certs", "-c", str(config)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert all(len(line) <= 80 for line in lines), result.output
    assert "…" not in result.output
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    # Stacked (the serials are too wide for a table at 80 columns): a heading per certificate.
    assert lines.count(first) == 1 and lines.count(second) == 1, result.output
    block = result.output.split(first, 1)[1].split(second, 1)[0]
    assert "ingest" in block and f"revoked {today}" in block
    assert "valid" in result.output.split(second, 1)[1]
    # Already revoked: said, and nothing changes.
    result = runner.invoke(app, ["revoke-service-cert", first.upper(), "-c", str(config)])
    assert result.exit_code == 0 and f"already revoked: {first}" in result.output


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        (["zz-not-hex"], 2, "is not a certificate serial"),
        (["12:3"], 2, "is not a certificate serial"),
        (["f" * 41], 2, "is not a certificate serial"),
        ([""], 2, "is not a certificate serial"),
        (["abc123"], 1, "no service certificate with serial abc123"),
        ([], 2, "name the serials to revoke"),
        (["--except", "abc"], 2, "--except goes with --name"),
        (["--name", "nobody"], 1, "no service certificate was issued for 'nobody'"),
        (["--name", "ingest", "--except", "abc"], 1, "no service certificate with serial abc"),
        (["--name", "ingest", "--restart-broker"], EX_CONFIG, "needs broker.restart_command"),
    ],
)
def test_bad_input_to_revoke_service_cert_is_one_line_and_changes_nothing(
    tmp_path: Path, args: list[str], code: int, said: str
) -> None:
    runner, config = _cli(tmp_path)
    serial = _issued(runner, config, tmp_path / "a")
    result = runner.invoke(app, ["revoke-service-cert", *args, "-c", str(config)])
    assert result.exit_code == code, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert said in result.output
    result = runner.invoke(app, ["service-certs", "-c", str(config)])
    assert "revoked" not in result.output and serial in result.output


def test_restart_broker_runs_the_configured_command_after_the_files_are_written(tmp_path: Path) -> None:
    marker = tmp_path / "restarted"
    command = f'restart_command = ["{sys.executable}", "-c", "open({str(marker)!r}, \'a\').write(\'x\')"]'
    runner, config = _cli(tmp_path, command)
    serial = _issued(runner, config, tmp_path / "a")
    result = runner.invoke(app, ["revoke-service-cert", serial, "--restart-broker", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert marker.read_text() == "x"
    assert "broker restarted" in result.output
    crl = x509.load_pem_x509_crl((tmp_path / "broker" / "service-crl.pem").read_bytes())
    assert [e.serial_number for e in crl] == [int(serial, 16)]


def test_a_failing_restart_command_is_one_line_and_the_revocation_stands(tmp_path: Path) -> None:
    runner, config = _cli(
        tmp_path, f'restart_command = ["{sys.executable}", "-c", "raise SystemExit(\'no unit\')"]'
    )
    serial = _issued(runner, config, tmp_path / "a")
    result = runner.invoke(app, ["revoke-service-cert", serial, "--restart-broker", "-c", str(config)])
    assert result.exit_code == EX_CONFIG, result.output
    assert len(result.output.strip().splitlines()) == 1 and "exited with 1: no unit" in result.output
    crl = x509.load_pem_x509_crl((tmp_path / "broker" / "service-crl.pem").read_bytes())
    assert [e.serial_number for e in crl] == [int(serial, 16)]


@pytest.mark.parametrize("text", ["0xAbC", "ab:cd", " abcd\n", "000abc"])
def test_serials_are_read_as_hex_in_the_forms_operators_paste(text: str) -> None:
    assert service_certs.parse_serial(text) in {"abc", "abcd"}


@pytest.mark.parametrize("text", ["", "0x", "g1", "ab:c", "ab::cd", "-1", "1 2", "ab:cd:", "\x00"])
def test_garbage_serials_are_refused(text: str) -> None:
    with pytest.raises(BadRequest):
        service_certs.parse_serial(text)


def test_issuing_records_the_certificate(service: AuthService, tmp_path: Path) -> None:
    paths = write_service_identity(service, tmp_path / "ingest", "ingest", actor="test")
    cert = x509.load_pem_x509_certificate(paths[1].read_bytes())
    with service.engine.connect() as conn:
        row = conn.execute(sa.select(service_certificates)).one()
    assert row.serial == format(cert.serial_number, "x") and row.name == "ingest" and row.revoked_at is None
    assert row.not_after == int(cert.not_valid_after_utc.timestamp())
