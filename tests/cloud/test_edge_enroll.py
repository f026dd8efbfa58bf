"""``edge-agent enroll`` against the auth service served by uvicorn, then the real daemon
connecting to the generated Mosquitto with the enrolled certificate."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from edge_agent.cli.app import app
from edge_agent.identity.stored import load_identity
from edge_agent.settings import load_settings
from tests.cloud.broker import Identity, auth_with_broker
from tests.cloud.mqtt_peer import wait_for
from tests.cloud.served import Recorder, serve

CONFIG = """
[device]
id = "{device}"
clock_check = "none"

[storage]
state_dir = "state"

[[sensors]]
name = "climate"
driver = "bme280"
bus = "sim"
address = 0x76
interval = "0.5s"
"""


def _key_fragments(key_file: Path) -> list[bytes]:
    """Ways the private key could leak: PEM, base64 body lines, DER, the raw scalar."""
    pem = key_file.read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    scalar = key.private_numbers().private_value.to_bytes(32, "big")  # type: ignore[union-attr]
    lines = [line for line in pem.splitlines() if line and not line.startswith(b"-----")]
    return [pem, der, scalar, scalar.hex().encode(), base64.b64encode(scalar), *lines]


def _assert_never_sent(recorder: Recorder, key_file: Path) -> None:
    assert recorder.requests, "nothing was captured"
    for fragment in _key_fragments(key_file):
        for request in recorder.requests:
            assert fragment not in request.raw(), f"private key material in {request.method} {request.path}"


def test_enroll_writes_a_local_key_and_the_daemon_connects_with_it(tmp_path: Path) -> None:
    runner = CliRunner()
    with auth_with_broker(tmp_path, f"sqlite:///{tmp_path / 'auth.db'}", host="127.0.0.1") as env:
        r = env.client.post("/v1/devices", json={"id": "dev-e2e"}, headers=env.admin_headers)
        token = r.json()["enrollment_token"]
        config = tmp_path / "edge" / "edge-agent.toml"
        config.parent.mkdir()
        config.write_text(CONFIG.format(device="dev-e2e"))
        with serve(env.service) as (url, recorder):
            assert url.startswith("http://")
            # Plain http without --insecure: refused before anything is sent (EX_USAGE, one line).
            refused = runner.invoke(
                app, ["enroll", "--auth-url", url, "--token", token, "--config", str(config)]
            )
            assert refused.exit_code == 2, refused.output
            assert "--insecure" in refused.output and "Traceback" not in refused.output
            assert recorder.requests == []
            insecure = ["enroll", "--insecure", "--auth-url", url, "--token", token, "--config", str(config)]
            result = runner.invoke(app, insecure)
            assert result.exit_code == 0, result.output
            assert "warning" in result.output and "unencrypted" in result.output
            again = runner.invoke(app, insecure)
            assert again.exit_code == 1 and "already used" in again.output

            state = tmp_path / "edge" / "state"
            identity = load_identity(state)
            assert identity is not None and identity.device_id == "dev-e2e"
            assert (identity.key.stat().st_mode & 0o777) == 0o600
            assert [rq.path for rq in recorder.requests] == ["/v1/enroll", "/v1/enroll"]
            _assert_never_sent(recorder, identity.key)

            settings = load_settings(config)
            assert settings.mqtt.tls is not None and settings.mqtt.tls.cert_file == identity.cert
            assert (settings.mqtt.host, settings.mqtt.port) == ("127.0.0.1", env.broker.port)

            _daemon_delivers(env, config, tmp_path)

            # Renewal: a new key and certificate, authorised by the old key, which is not sent either.
            old_key = tmp_path / "old.key"
            old_key.write_bytes(identity.key.read_bytes())
            old_serial = x509.load_pem_x509_certificate(identity.cert.read_bytes()).serial_number
            result = runner.invoke(app, ["enroll", "--renew", "--config", str(config)])
            assert result.exit_code == 0, result.output
            assert recorder.requests[-1].path == "/v1/devices/dev-e2e/renew"
            _assert_never_sent(recorder, old_key)
            _assert_never_sent(recorder, identity.key)
            assert x509.load_pem_x509_certificate(identity.cert.read_bytes()).serial_number != old_serial
            assert identity.key.read_bytes() != old_key.read_bytes()
            with env.peer(Identity("dev-e2e", identity.cert, identity.key, identity.ca)) as renewed:
                assert renewed.connect()


def _daemon_delivers(env: object, config: Path, tmp_path: Path) -> None:
    from tests.cloud.broker import AuthWithBroker

    assert isinstance(env, AuthWithBroker)
    with env.peer(env.ingest()) as ingest:
        assert ingest.connect()
        ingest.subscribe("devices/dev-e2e/events")
        log = (tmp_path / "agent.log").open("wb")
        agent = subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "run", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            wait_for(lambda: bool(ingest.received()), timeout=60, what="events from the enrolled daemon")
        finally:
            agent.send_signal(signal.SIGTERM)
            agent.wait(timeout=30)
            log.close()
    assert "dev-e2e" in env.broker.log and "u'dev-e2e'" in env.broker.log


def test_password_mode_enrollment_gives_the_agent_a_broker_password(tmp_path: Path) -> None:
    from tests.cloud.mqtt_peer import Peer
    from tests.mosquitto import free_port

    runner = CliRunner()
    with auth_with_broker(
        tmp_path, f"sqlite:///{tmp_path / 'auth.db'}", host="127.0.0.1", password_port=free_port()
    ) as env:
        token = env.client.post("/v1/devices", json={"id": "dev-pw"}, headers=env.admin_headers).json()[
            "enrollment_token"
        ]
        config = tmp_path / "edge" / "edge-agent.toml"
        config.parent.mkdir()
        config.write_text(CONFIG.format(device="dev-pw"))
        with serve(env.service) as (url, _recorder):
            args = ["enroll", "--password-mode", "--insecure", "--auth-url", url, "--token", token]
            args += ["--config", str(config)]
            result = runner.invoke(app, args)
            assert result.exit_code == 0, result.output
        identity = load_identity(tmp_path / "edge" / "state")
        assert identity is not None and identity.mode == "password"
        assert (identity.password_file.stat().st_mode & 0o777) == 0o600
        mqtt = load_settings(config).mqtt
        assert mqtt.username == "dev-pw" and mqtt.password is not None and mqtt.tls is not None
        assert mqtt.tls.cert_file is None and mqtt.port == env.service.settings.broker.password_port
        peer = Peer(
            mqtt.port,
            "dev-pw",
            ca=mqtt.tls.ca_file,
            username=mqtt.username,
            password=mqtt.password.get_secret_value(),
        )
        with peer:
            assert peer.connect(), env.broker.log
            assert peer.publish("devices/dev-pw/events") in (0, 0x10)
