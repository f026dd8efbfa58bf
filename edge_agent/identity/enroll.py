"""Enrolling this device with the auth service, and renewing its certificate.

``enroll``: make a private key here (EC P-256; written 0600, never sent anywhere), send a
CSR with the enrollment token to ``POST {auth_url}/v1/enroll``, and write the returned
certificate, CA and broker address into ``<state_dir>/identity/`` (see
:mod:`edge_agent.identity.stored`; the daemon uses them from then on).  ``renew``: a new key and
CSR, signed over with the *current* key (``protocol.renewal_message``), sent to
``POST {auth_url}/v1/devices/{id}/renew``.  The daemon's
:func:`edge_agent.identity.renewal.renewal_loop` calls ``renew`` once less than a third of
the certificate's lifetime (at most 30 days) is left.

HTTP is the standard library's ``urllib`` (the device installs no web stack).  Errors::

    EdgeAgentError
     └── EnrollmentError          enrollment or renewal failed
          ├── EnrollmentRefused   the service said no (4xx): token used/expired/for another
          │                       device, bad request; never retried
          └── AuthUnreachable     network trouble or a 5xx; retried with jittered backoff
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from edge_agent.errors import EdgeAgentError
from edge_agent.identity.stored import (
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
from edge_protocol.files import write_atomic
from edge_protocol.wire import DEVICE_ID_PATTERN, renewal_message

log = logging.getLogger(__name__)

HTTP_TIMEOUT_S = 30.0


class EnrollmentError(EdgeAgentError):
    """Enrollment or renewal failed."""


class EnrollmentRefused(EnrollmentError):
    """The auth service refused (4xx); the message is its reason."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class AuthUnreachable(EnrollmentError):
    """The auth service could not be reached, or failed (5xx)."""


_T = TypeVar("_T")


@dataclass(frozen=True)
class HttpClient:
    """POSTs JSON to the auth service; ``ca_file`` for a service behind a private CA."""

    base_url: str
    ca_file: Path | None = None
    timeout: float = HTTP_TIMEOUT_S

    def __post_init__(self) -> None:
        url = urllib.parse.urlsplit(self.base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise EnrollmentError(
                f"the auth service URL {self.base_url!r} is not an http(s) URL; "
                "give it as e.g. --auth-url https://auth.example.com"
            )

    def _context(self) -> ssl.SSLContext | None:
        if self.ca_file is None:
            return None
        try:
            return ssl.create_default_context(cafile=str(self.ca_file))
        except (OSError, ValueError) as exc:  # missing file, not PEM (ssl.SSLError is an OSError)
            raise EnrollmentError(f"cannot use the auth service CA file {self.ca_file}: {exc}") from exc

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
        context = self._context()
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=context) as response:
                data = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = _detail(exc)
            if exc.code >= 500:
                raise AuthUnreachable(f"{url}: HTTP {exc.code}: {detail}") from exc
            raise EnrollmentRefused(f"{url}: HTTP {exc.code}: {detail}", exc.code) from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AuthUnreachable(f"cannot reach the auth service at {url}: {reason}") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise AuthUnreachable(f"{url} answered with something that is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise AuthUnreachable(f"{url} answered with JSON that is not an object: {type(data).__name__}")
        return data


def _field(answer: dict[str, Any], path: str, kind: type[_T]) -> _T:
    """``answer[a][b]`` for ``path = "a.b"``, of type ``kind``, or a clear error (nothing written yet)."""
    value: Any = answer
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise EnrollmentError(
            f"the auth service's answer has no valid {path!r} ({kind.__name__} expected): "
            "is the URL that of edge-auth, and is it the same version?"
        )
    return value


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read())
        detail = body.get("detail", body)
        return detail if isinstance(detail, str) else json.dumps(detail)
    except (ValueError, OSError):
        return str(exc.reason)


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


def _validity(cert_pem: str) -> tuple[int, int]:
    """(not_before, not_after) in Unix seconds, recorded so the daemon need not parse X.509."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError as exc:
        raise EnrollmentError(f"the auth service's answer holds no valid certificate: {exc}") from exc
    return int(cert.not_valid_before_utc.timestamp()), int(cert.not_valid_after_utc.timestamp())


def _write_info(
    folder: Path,
    device_id: str,
    mode: str,
    auth_url: str,
    broker: dict[str, Any],
    validity: tuple[int, int] | None,
) -> None:
    info = {
        "device_id": device_id,
        "mode": mode,
        "auth_url": auth_url,
        "broker": broker,
        "not_before": None if validity is None else validity[0],
        "not_after": None if validity is None else validity[1],
    }
    write_atomic(folder / INFO_FILE, json.dumps(info, indent=2).encode(), mode=0o644)


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
    if device_id is not None and not DEVICE_ID_PATTERN.fullmatch(device_id):
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
        broker = {
            "host": _field(answer, "broker.host", str),
            "port": _field(answer, "broker.password_port", int),
        }
        ca_pem = _field(answer, "ca_certificate", str)
        password = _field(answer, "password", str)
        enrolled_id = _field(answer, "device_id", str)
        write_atomic(folder / CA_FILE, ca_pem.encode(), mode=0o644)
        write_atomic(folder / PASSWORD_FILE, password.encode(), mode=0o600)
        for stale in (KEY_FILE, CERT_FILE):
            (folder / stale).unlink(missing_ok=True)
        _write_info(folder, enrolled_id, "password", auth_url, broker, None)
    else:
        # The CSR carries the id we expect; the service sets the CN itself anyway.
        key_pem, csr = _new_key_and_csr(device_id or "device")
        answer = client.post("/v1/enroll", {**body, "csr": csr})
        certificate = _field(answer, "certificate", str)
        validity = _validity(certificate)
        ca_pem = _field(answer, "ca_certificate", str)
        broker = {"host": _field(answer, "broker.host", str), "port": _field(answer, "broker.port", int)}
        enrolled_id = _field(answer, "device_id", str)
        write_atomic(folder / (KEY_FILE + NEW), key_pem, mode=0o600)
        write_atomic(folder / CA_FILE, ca_pem.encode(), mode=0o644)
        write_atomic(folder / (CERT_FILE + NEW), certificate.encode(), mode=0o644)
        _write_info(folder, enrolled_id, "cert", auth_url, broker, validity)
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
    certificate = _field(answer, "certificate", str)
    validity = _validity(certificate)
    ca_pem = _field(answer, "ca_certificate", str)
    write_atomic(folder / (KEY_FILE + NEW), key_pem, mode=0o600)
    write_atomic(folder / (CERT_FILE + NEW), certificate.encode(), mode=0o644)
    write_atomic(folder / CA_FILE, ca_pem.encode(), mode=0o644)
    broker = {"host": identity.broker_host, "port": identity.broker_port}
    _write_info(folder, identity.device_id, "cert", identity.auth_url, broker, validity)
    renewed = load_identity(state_dir)
    if renewed is None:
        raise EnrollmentError(f"the renewed identity in {folder} cannot be read back")
    return renewed
