"""Enrolling this device with the auth service, and renewing its certificate.

``enroll``: make a private key here (EC P-256; written 0600, never sent anywhere), send a
CSR with the enrollment token to ``POST {auth_url}/v1/enroll``, and write the returned
certificate, CA and broker address into ``<state_dir>/identity/`` (see
:mod:`edge_agent.identity`; the daemon uses them from then on).  ``renew``: a new key and
CSR, signed over with the *current* key (``protocol.renewal_message``), sent to
``POST {auth_url}/v1/devices/{id}/renew``.  The daemon runs :func:`renewal_loop`, which
renews once less than a third of the certificate's lifetime (at most 30 days) is left.

HTTP is the standard library's ``urllib`` (the device installs no web stack).  Errors::

    EdgeAgentError
     └── EnrollmentError          enrollment or renewal failed
          ├── EnrollmentRefused   the service said no (4xx): token used/expired/for another
          │                       device, bad request; never retried
          └── AuthUnreachable     network trouble or a 5xx; retried with jittered backoff
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import ssl
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from edge_agent.errors import EdgeAgentError
from edge_agent.identity import (
    CA_FILE,
    CERT_FILE,
    INFO_FILE,
    KEY_FILE,
    NEW,
    PASSWORD_FILE,
    EnrolledIdentity,
    identity_dir,
    load_identity,
)
from edge_agent.protocol import DEVICE_ID_PATTERN, renewal_message

log = logging.getLogger(__name__)

HTTP_TIMEOUT_S = 30.0
RENEW_CHECK_S = 86400.0
RENEW_RETRY_S = 3600.0
RENEW_BEFORE_MAX_S = 30 * 86400.0


class EnrollmentError(EdgeAgentError):
    """Enrollment or renewal failed."""


class EnrollmentRefused(EnrollmentError):
    """The auth service refused (4xx); the message is its reason."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class AuthUnreachable(EnrollmentError):
    """The auth service could not be reached, or failed (5xx)."""


@dataclass(frozen=True)
class HttpClient:
    """POSTs JSON to the auth service; ``ca_file`` for a service behind a private CA."""

    base_url: str
    ca_file: Path | None = None
    timeout: float = HTTP_TIMEOUT_S

    @retry(
        retry=retry_if_exception_type(AuthUnreachable),
        wait=wait_random_exponential(multiplier=1, max=20),
        stop=stop_after_attempt(4),
        reraise=True,
    )
    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        url = self.base_url.rstrip("/") + path
        request = urllib.request.Request(
            url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        context = ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file else None
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=context) as response:
                data: dict[str, Any] = json.loads(response.read())
                return data
        except urllib.error.HTTPError as exc:
            detail = _detail(exc)
            if exc.code >= 500:
                raise AuthUnreachable(f"{url}: HTTP {exc.code}: {detail}") from exc
            raise EnrollmentRefused(f"{url}: HTTP {exc.code}: {detail}", exc.code) from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AuthUnreachable(f"cannot reach the auth service at {url}: {reason}") from exc
        except json.JSONDecodeError as exc:
            raise AuthUnreachable(f"{url} answered with something that is not JSON: {exc}") from exc


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read())
        detail = body.get("detail", body)
        return detail if isinstance(detail, str) else json.dumps(detail)
    except (ValueError, OSError):
        return str(exc.reason)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Atomically, with ``mode`` from the start (a key is never world-readable, not even briefly)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _new_key_and_csr(device_id: str) -> tuple[bytes, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)]))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, csr.public_bytes(serialization.Encoding.PEM).decode()


def _not_after(cert_pem: str) -> int:
    return int(x509.load_pem_x509_certificate(cert_pem.encode()).not_valid_after_utc.timestamp())


def _write_info(
    folder: Path, device_id: str, mode: str, auth_url: str, broker: dict[str, Any], not_after: int | None
) -> None:
    info = {
        "device_id": device_id,
        "mode": mode,
        "auth_url": auth_url,
        "broker": broker,
        "not_after": not_after,
    }
    _write(folder / INFO_FILE, json.dumps(info, indent=2).encode(), 0o644)


def enroll(
    state_dir: Path,
    *,
    auth_url: str,
    token: str,
    device_id: str | None,
    password_mode: bool = False,
    client: HttpClient | None = None,
) -> EnrolledIdentity:
    """Enroll and write the identity; returns it.  Raises :class:`EnrollmentError`."""
    if device_id is not None and not DEVICE_ID_PATTERN.match(device_id):
        raise EnrollmentRefused(f"device id {device_id!r} must match {DEVICE_ID_PATTERN.pattern}", 0)
    client = client or HttpClient(auth_url)
    folder = identity_dir(state_dir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    body: dict[str, Any] = {"token": token}
    if device_id is not None:
        body["device_id"] = device_id
    if password_mode:
        body["mode"] = "password"
        answer = client.post("/v1/enroll", body)
        broker = {"host": answer["broker"]["host"], "port": answer["broker"]["password_port"]}
        _write(folder / CA_FILE, answer["ca_certificate"].encode(), 0o644)
        _write(folder / PASSWORD_FILE, answer["password"].encode(), 0o600)
        for stale in (KEY_FILE, CERT_FILE):
            (folder / stale).unlink(missing_ok=True)
        _write_info(folder, answer["device_id"], "password", auth_url, broker, None)
    else:
        # The CSR carries the id we expect; the service sets the CN itself anyway.
        key_pem, csr = _new_key_and_csr(device_id or "device")
        answer = client.post("/v1/enroll", {**body, "csr": csr})
        certificate = answer["certificate"]
        _write(folder / (KEY_FILE + NEW), key_pem, 0o600)
        _write(folder / CA_FILE, answer["ca_certificate"].encode(), 0o644)
        _write(folder / (CERT_FILE + NEW), certificate.encode(), 0o644)
        broker = {"host": answer["broker"]["host"], "port": answer["broker"]["port"]}
        _write_info(folder, answer["device_id"], "cert", auth_url, broker, _not_after(certificate))
        (folder / PASSWORD_FILE).unlink(missing_ok=True)
    identity = load_identity(state_dir)  # also moves the .new pair into place
    if identity is None:
        raise EnrollmentError(f"the identity written to {folder} cannot be read back")
    return identity


def _sign(key_pem: bytes, message: bytes) -> bytes:
    key = serialization.load_pem_private_key(key_pem, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(message, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(message)
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    raise EnrollmentError("the device key is of a kind renewal does not support (EC, Ed25519 or RSA)")


def renew(state_dir: Path, *, client: HttpClient | None = None, now: float | None = None) -> EnrolledIdentity:
    """A new key and certificate, authorised by the current key.  Raises :class:`EnrollmentError`."""
    identity = load_identity(state_dir)
    if identity is None or identity.mode != "cert":
        raise EnrollmentError("this device has no enrolled certificate to renew; run edge-agent enroll first")
    client = client or HttpClient(identity.auth_url)
    key_pem, csr = _new_key_and_csr(identity.device_id)
    timestamp = int(time.time() if now is None else now)
    signature = _sign(identity.key.read_bytes(), renewal_message(identity.device_id, timestamp, csr))
    answer = client.post(
        f"/v1/devices/{identity.device_id}/renew",
        {
            "certificate": identity.cert.read_text(),
            "csr": csr,
            "timestamp": timestamp,
            "signature": base64.b64encode(signature).decode(),
        },
    )
    folder = identity.directory
    certificate = answer["certificate"]
    _write(folder / (KEY_FILE + NEW), key_pem, 0o600)
    _write(folder / (CERT_FILE + NEW), certificate.encode(), 0o644)
    _write(folder / CA_FILE, answer["ca_certificate"].encode(), 0o644)
    broker = {"host": identity.broker_host, "port": identity.broker_port}
    _write_info(folder, identity.device_id, "cert", identity.auth_url, broker, _not_after(certificate))
    renewed = load_identity(state_dir)
    if renewed is None:
        raise EnrollmentError(f"the renewed identity in {folder} cannot be read back")
    return renewed


def renewal_due(identity: EnrolledIdentity, now: float) -> bool:
    """Less than a third of the lifetime (at most 30 days) left."""
    if identity.mode != "cert" or identity.not_after is None:
        return False
    cert = x509.load_pem_x509_certificate(identity.cert.read_bytes())
    lifetime = cert.not_valid_after_utc.timestamp() - cert.not_valid_before_utc.timestamp()
    return identity.not_after - now < min(lifetime / 3, RENEW_BEFORE_MAX_S)


async def renewal_loop(state_dir: Path, *, check_every: float = RENEW_CHECK_S) -> None:
    """For the daemon: renew the certificate when due; check daily, retry hourly after a failure."""
    while True:
        delay = check_every
        identity = load_identity(state_dir)
        if identity is not None and renewal_due(identity, time.time()):
            try:
                renewed = await asyncio.to_thread(renew, state_dir)
                log.info(
                    "certificate renewed; valid until %s (used from the next connection)", renewed.not_after
                )
            except (EnrollmentError, OSError, ValueError) as exc:
                log.warning("certificate renewal failed (retrying in %d min): %s", RENEW_RETRY_S // 60, exc)
                delay = min(check_every, RENEW_RETRY_S)
        await asyncio.sleep(delay)
