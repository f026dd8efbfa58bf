"""The device side without a service: identity files, settings, renewal timing, bad answers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from tenacity import stop_after_attempt, wait_none

from edge_agent.identity.enroll import (
    AuthUnreachable,
    EnrollmentError,
    EnrollmentRefused,
    HttpClient,
    enroll,
)
from edge_agent.identity.stored import identity_dir, load_identity
from edge_agent.settings import load_settings

INFO = {
    "device_id": "dev-1",
    "mode": "cert",
    "auth_url": "http://x",
    "broker": {"host": "b.example", "port": 8883},
    "not_after": 1,
}


def _identity_files(state: Path) -> Path:
    folder = identity_dir(state)
    folder.mkdir(parents=True)
    for name in ("device.key", "device.pem", "ca.pem"):
        (folder / name).write_text(name)
    (folder / "enrollment.json").write_text(json.dumps(INFO))
    return folder


def test_enrolled_files_fill_tls_and_broker_only_where_the_config_is_silent(tmp_path: Path) -> None:
    folder = _identity_files(tmp_path / "state")
    config = tmp_path / "edge.toml"
    config.write_text('[device]\nid = "dev-1"\n[storage]\nstate_dir = "state"\n')
    mqtt = load_settings(config).mqtt
    assert mqtt.tls is not None and mqtt.tls.key_file == folder / "device.key"
    assert (mqtt.host, mqtt.port) == ("b.example", 8883)
    config.write_text(config.read_text() + '[mqtt]\nhost = "other"\n')
    mqtt = load_settings(config).mqtt
    assert (mqtt.host, mqtt.port) == ("other", 8883)
    config.write_text(config.read_text() + '[mqtt.tls]\nca_file = "mine.pem"\n')
    mqtt = load_settings(config).mqtt
    assert mqtt.tls is not None and mqtt.tls.cert_file is None  # an explicit [mqtt.tls] wins


def test_an_interrupted_renewal_never_pairs_a_key_with_the_wrong_certificate(tmp_path: Path) -> None:
    folder = _identity_files(tmp_path)
    (folder / "device.key.new").write_text("new key")  # crashed before the certificate was written
    assert load_identity(tmp_path) is not None
    assert (folder / "device.key").read_text() == "device.key" and not (folder / "device.key.new").exists()
    (folder / "device.key.new").write_text("new key")
    (folder / "device.pem.new").write_text("new cert")  # crashed before the renames
    load_identity(tmp_path)
    assert (folder / "device.key").read_text() == "new key" and (
        folder / "device.pem"
    ).read_text() == "new cert"
    (folder / "device.pem.new").write_text("newer cert")  # crashed between the two renames
    load_identity(tmp_path)
    assert (folder / "device.pem").read_text() == "newer cert"


def test_incomplete_or_garbage_identity_is_ignored(tmp_path: Path) -> None:
    folder = _identity_files(tmp_path)
    (folder / "enrollment.json").write_text("{not json")
    assert load_identity(tmp_path) is None
    (folder / "enrollment.json").write_text(json.dumps({"device_id": "x"}))
    assert load_identity(tmp_path) is None
    (folder / "enrollment.json").write_text(json.dumps(INFO))
    (folder / "device.key").unlink()
    assert load_identity(tmp_path) is None


@contextmanager
def answering(status: int, body: bytes) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(status)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _fast(url: str) -> HttpClient:
    client = HttpClient(url, timeout=5)
    fast_post = HttpClient.post.retry_with(wait=wait_none(), stop=stop_after_attempt(2))  # type: ignore[attr-defined]
    object.__setattr__(client, "post", lambda path, body: fast_post(client, path, body))
    return client


@pytest.mark.parametrize(
    ("status", "body", "error", "text"),
    [
        (403, b'{"detail": "enrollment token already used"}', EnrollmentRefused, "already used"),
        (422, b'{"detail": [{"msg": "bad"}]}', EnrollmentRefused, "bad"),
        (500, b"Internal Server Error", AuthUnreachable, "500"),
        (200, b"<html>not json", AuthUnreachable, "not JSON"),
        (200, b"\xff\xfe", AuthUnreachable, "not JSON"),
        (200, b"[1, 2]", AuthUnreachable, "not an object"),
        (200, b"{}", EnrollmentError, "no valid 'certificate'"),
        (200, b'{"certificate": 5}', EnrollmentError, "no valid 'certificate'"),
        (
            200,
            b'{"certificate": "-----BEGIN CERTIFICATE-----\\nxx"}',
            EnrollmentError,
            "no valid certificate",
        ),
    ],
)
def test_bad_answers_are_clear_errors_and_nothing_is_written(
    tmp_path: Path, status: int, body: bytes, error: type[Exception], text: str
) -> None:
    with answering(status, body) as url, pytest.raises(error, match=text):
        enroll(tmp_path, auth_url=url, token="t", device_id="dev-1", client=_fast(url))
    assert load_identity(tmp_path) is None
    assert not any(p.name.startswith("device.key") for p in identity_dir(tmp_path).iterdir())


@pytest.mark.parametrize(
    ("url", "ca", "text"),
    [
        ("notaurl", None, "not an http"),
        ("ftp://auth.example", None, "not an http"),
        ("file:///etc/passwd", None, "not an http"),
        ("https://127.0.0.1:1", "missing.pem", "cannot use the auth service CA file"),
        ("https://127.0.0.1:1", "garbage.pem", "cannot use the auth service CA file"),
    ],
)
def test_a_bad_url_or_ca_file_is_a_clear_error_and_nothing_is_written(
    tmp_path: Path, url: str, ca: str | None, text: str
) -> None:
    (tmp_path / "garbage.pem").write_text("not a certificate")
    with pytest.raises(EnrollmentError, match=text):
        client = HttpClient(url, tmp_path / ca if ca else None)
        enroll(tmp_path / "state", auth_url=url, token="t", device_id="dev-1", client=client)
    assert load_identity(tmp_path / "state") is None


def test_unreachable_service_is_reported_as_such(tmp_path: Path) -> None:
    from tests.mosquitto import free_port

    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(AuthUnreachable, match="cannot reach"):
        enroll(tmp_path, auth_url=url, token="t", device_id="dev-1", client=_fast(url))
    with pytest.raises(EnrollmentRefused, match="must match"):
        enroll(tmp_path, auth_url=url, token="t", device_id="bad/id")
    with pytest.raises(EnrollmentRefused, match="must match"):
        enroll(tmp_path, auth_url=url, token="t", device_id="dev-1\n")


def test_renewal_is_due_with_a_third_of_the_lifetime_left(tmp_path: Path) -> None:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    from edge_agent.identity.renewal import renewal_due
    from tests.cloud.helpers import new_key

    folder = _identity_files(tmp_path)
    key = new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dev-1")])
    start = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(start).not_valid_after(start + dt.timedelta(days=90))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    (folder / "device.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    end = (start + dt.timedelta(days=90)).timestamp()
    (folder / "enrollment.json").write_text(json.dumps({**INFO, "not_after": int(end)}))
    identity = load_identity(tmp_path)
    assert identity is not None
    assert not renewal_due(identity, end - 31 * 86400)
    assert renewal_due(identity, end - 29 * 86400)
