"""``edge-auth``: configuration errors (exit 78), admin from stdin, devices, broker files."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_cloud.auth.cli import app
from edge_cloud.auth.settings import load_auth_settings
from edge_cloud.common.errors import EX_CONFIG
from tests.conftest import REPO


def write_config(tmp_path: Path, extra: str = "") -> Path:
    config = tmp_path / "edge-auth.toml"
    config.write_text(f'state_dir = "state"\n[broker]\nout_dir = "broker"\nport = 18883\n{extra}')
    return config


def test_bad_config_names_file_and_field_and_exits_78(tmp_path: Path) -> None:
    config = write_config(tmp_path, 'max_packet_sise = 5\n[tokens]\naccess_ttl = "soon"\n')
    env = {**os.environ, "AUTH_SERVER__PORT": "not-a-port"}
    result = subprocess.run(
        [sys.executable, "-m", "edge_cloud.auth", "db", "upgrade", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == EX_CONFIG, result.stderr
    err = " ".join(result.stderr.split())
    assert (
        f"{config}: broker.max_packet_sise: unknown key 'max_packet_sise' (did you mean 'max_packet_size'?)"
        in err
    )
    assert f"{config}: tokens.access_ttl: 'soon' is not a duration" in err
    assert "environment variable AUTH_SERVER__PORT: server.port" in err


def test_a_config_file_that_cannot_be_read_or_parsed_is_one_line_and_exit_78(tmp_path: Path) -> None:
    loop = tmp_path / "loop.toml"
    loop.symlink_to(loop)  # ELOOP: an OSError other than not found, permission, directory
    deep = tmp_path / "deep.toml"
    deep.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")  # tomllib: RecursionError
    for config, problem in (
        (loop, "cannot read the file: Too many levels of symbolic links"),
        (deep, "invalid TOML: arrays or tables nested too deeply"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "edge_cloud.auth", "db", "upgrade", "--config", str(config)],
            capture_output=True,
            text=True,
        )
        assert result.returncode == EX_CONFIG, result.stderr
        assert "Traceback" not in result.stderr
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip().startswith("✗")]
        assert lines == [f"✗ {config}: {problem}"], result.stderr


@pytest.mark.parametrize(
    ("value", "why"), [("{bad", "not valid JSON"), ("[" * 3000, "nested too deeply to decode")]
)
def test_a_table_variable_that_is_not_json_is_one_line_and_exit_78(
    tmp_path: Path, value: str, why: str
) -> None:
    """pydantic-settings raised SettingsError (or RecursionError) out of edge-auth: a traceback, exit 1."""
    result = subprocess.run(
        [sys.executable, "-m", "edge_cloud.auth", "db", "upgrade", "--config", str(write_config(tmp_path))],
        capture_output=True,
        text=True,
        env={**os.environ, "AUTH_SERVER": value},
    )
    assert result.returncode == EX_CONFIG, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip().startswith("✗")]
    assert lines == [f"✗ environment variable AUTH_SERVER: server: expected JSON for a table or list: {why}"]


def test_environment_overrides_the_file_and_paths_are_relative_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTH_BROKER__PORT", "19999")
    settings = load_auth_settings(write_config(tmp_path))
    assert settings.broker.port == 19999
    assert settings.state_dir == tmp_path / "state" and settings.broker.out_dir == tmp_path / "broker"
    assert settings.database_url == f"sqlite:///{tmp_path / 'state' / 'auth.db'}"


def test_admin_device_and_broker_files_from_the_shell(tmp_path: Path) -> None:
    runner = CliRunner()
    config = str(write_config(tmp_path))
    result = runner.invoke(
        app, ["create-admin", "--password-stdin", "-c", config], input="a long enough password\n"
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app, ["create-admin", "--password-stdin", "-c", config], input="another long password\n"
    )
    assert result.exit_code == 1 and "exists" in result.output
    result = runner.invoke(
        app, ["create-admin", "-u", "shorty", "--password-stdin", "-c", config], input="short\n"
    )
    assert result.exit_code == 1 and "at least 12" in result.output
    result = runner.invoke(app, ["create-device", "dev-7", "--json", "-c", config])
    assert result.exit_code == 0 and '"enrollment_token": "eet_' in result.output
    result = runner.invoke(
        app, ["broker-config", "--out", str(tmp_path / "out"), "--no-reload", "-c", config]
    )
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [
        "acl", "ca.pem", "crl.pem", "edge-devices.conf", "passwd", "server.key", "server.pem", "service-ca.pem",
        "service-crl.pem",
    ]  # fmt: skip
    conf = (tmp_path / "out" / "edge-devices.conf").read_text()
    for line in ("require_certificate true", "use_identity_as_username true", "use_username_as_clientid true",
                 "allow_anonymous false", "listener 18883 0.0.0.0", f"crlfile {tmp_path / 'out' / 'crl.pem'}",
                 f"crlfile {tmp_path / 'out' / 'service-crl.pem'}"):  # fmt: skip
        assert line in conf
    assert (tmp_path / "out" / "server.key").stat().st_mode & 0o077 == 0o040  # group (the broker) may read it
    assert not list((tmp_path / "out").glob(".*"))  # no temporary files left behind
    result = runner.invoke(app, ["revoke-device", "dev-7", "-c", config])
    assert result.exit_code == 0 and "revoked" in result.output
    result = runner.invoke(app, ["devices", "-c", config])
    assert "dev-7" in result.output and "revoked" in result.output


def test_service_cert_is_one_certificate_of_the_service_ca_for_every_ingest_process(tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    runner = CliRunner()
    config = str(write_config(tmp_path))
    out = tmp_path / "ingest"
    result = runner.invoke(app, ["service-cert", "--out", str(out), "-c", config])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "ca.pem",
        "ingest.key",
        "ingest.pem",
        "ingest.share-group",
    ]
    for secret in ("ingest.key", "ingest.share-group"):
        assert (out / secret).stat().st_mode & 0o077 == 0
    cert = x509.load_pem_x509_certificate((out / "ingest.pem").read_bytes())
    service_ca = x509.load_pem_x509_certificate((tmp_path / "state" / "service-ca" / "ca.pem").read_bytes())
    cert.verify_directly_issued_by(service_ca)  # the service CA, not the device CA …
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "ingest"
    # … while ca.pem is the one that verifies the broker's certificate.
    assert (out / "ca.pem").read_text() == (tmp_path / "state" / "ca" / "ca.pem").read_text()
    group = (out / "ingest.share-group").read_text().strip()
    assert re.fullmatch(r"ingest-[0-9a-f]{32}", group)
    output = " ".join(result.output.split())
    for said in ("127.0.0.1:8884", "ingest@1", "ingest@2", f"$share/{group}/"):
        assert said in output, said
    # Again (a renewal): a new certificate, the same group.
    result = runner.invoke(app, ["service-cert", "--out", str(out), "-c", config])
    assert result.exit_code == 0, result.output
    assert (
        x509.load_pem_x509_certificate((out / "ingest.pem").read_bytes()).serial_number != cert.serial_number
    )
    assert (out / "ingest.share-group").read_text().strip() == group
    # Only the service identity the ACL knows: a device's name would give its holder that
    # device's rights on the listener where the client picks its own id.
    assert runner.invoke(app, ["create-device", "dev-7", "-c", config]).exit_code == 0
    for name in ("dev-7", "someone"):
        result = runner.invoke(
            app, ["service-cert", "--out", str(tmp_path / name), "--name", name, "-c", config]
        )
        assert result.exit_code == 1 and "not a service identity" in result.output, result.output
        assert not (tmp_path / name / f"{name}.pem").exists()


def test_the_service_listener_needs_its_own_port(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edge_cloud.auth", "db", "upgrade", "--config", str(write_config(tmp_path))],
        capture_output=True,
        text=True,
        env={**os.environ, "AUTH_BROKER__SERVICE_PORT": "18883"},
    )
    assert result.returncode == EX_CONFIG, result.stderr
    assert "broker.service_port must differ from broker.port" in " ".join(result.stderr.split())


def test_a_trailing_newline_does_not_slip_into_an_id_or_the_acl(tmp_path: Path) -> None:
    # re.match(r"^…$") accepts "evil\n": the id would end up in the ACL and the CN as is.
    runner = CliRunner()
    config = str(write_config(tmp_path))
    result = runner.invoke(app, ["create-device", "evil\n", "-c", config])
    assert result.exit_code == 1 and "must match" in result.output
    result = runner.invoke(
        app,
        ["create-admin", "-u", "root\n", "--password-stdin", "-c", config],
        input="a long enough password\n",
    )
    assert result.exit_code == 1 and "user names are" in result.output
    result = runner.invoke(app, ["devices", "-c", config])
    assert "evil" not in result.output


def test_the_sample_config_is_valid() -> None:
    settings = load_auth_settings(REPO / "config" / "edge-auth.toml")
    assert settings.broker.port == 8883 and settings.state_dir == REPO / "state" / "edge-auth"


def test_serve_runs_migrates_and_serves_the_spec(tmp_path: Path) -> None:
    import json
    import signal
    import time
    import urllib.request

    from tests.mosquitto import free_port

    port = free_port()
    config = write_config(tmp_path)
    server = subprocess.Popen(
        [sys.executable, "-m", "edge_cloud.auth", "serve", "--config", str(config), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert json.loads(r.read()) == {"status": "ok"}
                break
            except OSError:
                assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
                assert time.monotonic() < deadline, "edge-auth serve did not answer within 60 s"
                time.sleep(0.1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json", timeout=5) as r:
            assert "/v1/enroll" in json.loads(r.read())["paths"]
        assert (tmp_path / "broker" / "edge-devices.conf").exists()  # reconciled at start
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)
        if server.stdout:
            server.stdout.close()


def test_version_help_and_create_admin_without_a_terminal(tmp_path: Path) -> None:
    runner = CliRunner()
    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0 and version.stdout.startswith("edge-auth ")
    revoke = runner.invoke(app, ["revoke-device", "--help"], env={"COLUMNS": "80"})
    assert "The device to revoke" in revoke.stdout
    # No terminal and no --password-stdin: a one-line error, not getpass's GetPassWarning.
    admin = runner.invoke(app, ["create-admin", "--config", str(write_config(tmp_path))], input="")
    assert admin.exit_code == 2 and "--password-stdin" in admin.stderr
    assert "GetPassWarning" not in admin.output and "Traceback" not in admin.output
