"""Enrollment and renewal: turning a token and a CSR into a device certificate.

Enrollment (``POST /v1/enroll``): the device proves it holds a token — a one-time token
bound to its id, or a batch claim token that creates the device — and sends a CSR made
from a key it generated itself.  The CA signs a client certificate with CN = device id
(the CSR's own subject is ignored).  In password mode no CSR is sent: the service makes a
random secret, returns it once, and keeps only its ``$7$`` hash for the broker.

Renewal (``POST /v1/devices/{id}/renew``): the device sends its current certificate, a
CSR for a new key, a Unix timestamp and a signature, made with the *current* key, over
``edge-auth renew\\n{device id}\\n{timestamp}\\n{SHA-256 hex of the CSR PEM}``.  The
service accepts it if the certificate is ours, for that device, the newest one issued,
not revoked, not expired, the device active, the timestamp within
``enrollment.renew_clock_skew`` and the signature valid.  (The CSR alone proves only the
*new* key; the signature proves the old one; a replay fails because the presented
certificate is no longer the newest once renewed.)
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from sqlalchemy.engine import Connection

from edge_cloud.auth import audit, opaque, registry
from edge_cloud.auth.ca import CertificateAuthority, fingerprint, load_csr, pem
from edge_cloud.auth.errors import BadRequest, EnrollmentRefused
from edge_cloud.auth.mosquitto_passwd import hash_secret
from edge_cloud.auth.registry import Actor
from edge_cloud.auth.tables import certificates, devices, enrollment_tokens
from edge_protocol.wire import renewal_message


@dataclass(frozen=True)
class Issued:
    device_id: str
    certificate: str | None
    not_after: int | None
    password: str | None
    serial: str | None
    # The device held an identity before this enrollment (now revoked): whoever still has
    # it may be connected, and its session must be cut (``revocation.cut_session``).
    replaced: bool = False


def enroll(
    conn: Connection,
    ca: CertificateAuthority,
    *,
    token: str,
    device_id: str | None,
    csr_pem: str | None,
    now: float,
    lifetime: float,
    address: str | None,
    reserved: set[str],
) -> Issued:
    row = conn.execute(
        sa.select(enrollment_tokens).where(enrollment_tokens.c.token_hash == opaque.digest(token))
    ).first()
    if row is None or row.revoked_at is not None:
        raise EnrollmentRefused("enrollment token unknown or withdrawn; ask an operator for a new one")
    if row.expires_at <= now:
        raise EnrollmentRefused("enrollment token expired; ask an operator for a new one")
    if row.uses_left <= 0:
        raise EnrollmentRefused("enrollment token already used; ask an operator for a new one")
    csr = load_csr(csr_pem) if csr_pem is not None else None  # a bad CSR must not spend the token
    actor = Actor(f"device:{device_id or row.device_id}", address)
    if row.kind == "device":
        if device_id is not None and device_id != row.device_id:
            raise EnrollmentRefused("this enrollment token belongs to another device")
        device_id = str(row.device_id)
        device = registry.get_device(conn, device_id)
        if device.status not in ("pending", "active"):
            raise EnrollmentRefused(f"device {device_id!r} is {device.status}; it cannot enroll")
        replaced = device.enrolled_at is not None
    else:
        if device_id is None:
            raise BadRequest("a claim token enrolls a new device: device_id is required")
        registry.check_device_id(device_id, reserved=reserved)
        replaced = False
        if conn.execute(sa.select(devices.c.id).where(devices.c.id == device_id)).first():
            raise EnrollmentRefused(f"device {device_id!r} exists; a claim token only enrolls new devices")
        conn.execute(
            devices.insert().values(id=device_id, status="pending", created_at=int(now), changed_at=int(now))
        )
        audit.record(
            conn,
            at=now,
            actor=actor.name,
            address=address,
            action="device.claimed",
            target=device_id,
            claim_token=row.id,
        )
    spent = conn.execute(
        enrollment_tokens.update()
        .where(enrollment_tokens.c.id == row.id, enrollment_tokens.c.uses_left > 0)
        .values(uses_left=enrollment_tokens.c.uses_left - 1)
    )
    if spent.rowcount != 1:
        raise EnrollmentRefused("enrollment token already used; ask an operator for a new one")
    # A new identity: whatever this device held before stops working.
    registry.revoke_certificates(conn, device_id, now=now)
    if csr is not None:
        issued = _issue(conn, ca, csr, device_id, now=now, lifetime=lifetime, replaced=replaced)
        values: dict[str, object] = {"auth_mode": "cert", "password_hash": None}
    else:
        password = secrets.token_urlsafe(32)
        issued = Issued(device_id, None, None, password, None, replaced)
        values = {"auth_mode": "password", "password_hash": hash_secret(password)}
    conn.execute(
        devices.update()
        .where(devices.c.id == device_id)
        .values(status="active", enrolled_at=int(now), changed_at=int(now), **values)
    )
    audit.record(
        conn, at=now, actor=actor.name, address=address, action="device.enrolled", target=device_id,
        mode=values["auth_mode"], serial=issued.serial, token_kind=row.kind, replaced=replaced,
    )  # fmt: skip
    return issued


def token_holder(conn: Connection, token: str) -> str | None:
    """Who a presented token belongs to, for the audit of a refusal: ``device:<id>`` for a
    device's token, ``claim-token:<id>`` for a claim token, None if it is not ours."""
    row = conn.execute(
        sa.select(enrollment_tokens.c.id, enrollment_tokens.c.kind, enrollment_tokens.c.device_id).where(
            enrollment_tokens.c.token_hash == opaque.digest(token)
        )
    ).first()
    if row is None:
        return None
    return f"device:{row.device_id}" if row.kind == "device" else f"claim-token:{row.id}"


def _issue(
    conn: Connection,
    ca: CertificateAuthority,
    csr: x509.CertificateSigningRequest,
    device_id: str,
    *,
    now: float,
    lifetime: float,
    replaced: bool = False,
) -> Issued:
    cert = ca.sign_device(csr, device_id, now=now, lifetime=lifetime)
    serial = format(cert.serial_number, "x")
    not_after = int(cert.not_valid_after_utc.timestamp())
    conn.execute(
        certificates.insert().values(
            serial=serial,
            device_id=device_id,
            fingerprint=fingerprint(cert),
            issued_at=int(now),
            not_after=not_after,
        )
    )
    return Issued(device_id, pem(cert), not_after, None, serial, replaced)


def renew(
    conn: Connection,
    ca: CertificateAuthority,
    device_id: str,
    *,
    certificate_pem: str,
    csr_pem: str,
    timestamp: int,
    signature: bytes,
    now: float,
    lifetime: float,
    skew: float,
    address: str | None,
) -> Issued:
    try:
        cert = x509.load_pem_x509_certificate(certificate_pem.encode())
    except ValueError as exc:
        raise BadRequest(f"certificate is not a PEM certificate: {exc}") from exc
    refused = EnrollmentRefused(
        "renewal refused: the certificate or the signature does not prove this device"
    )
    if not ca.issued_by_me(cert):
        raise refused
    cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    if len(cns) != 1 or cns[0].value != device_id:
        raise refused
    if abs(now - timestamp) > skew:
        raise EnrollmentRefused(
            f"renewal timestamp is more than {int(skew)} s from the service's clock; fix the device clock"
        )
    if cert.not_valid_after_utc.timestamp() <= now:
        raise EnrollmentRefused("the certificate has expired; enroll again with a new token")
    device = registry.get_device(conn, device_id)
    current = registry.current_certificate(conn, device_id)
    if device.status != "active" or current is None or current.serial != format(cert.serial_number, "x"):
        raise refused
    if not _signature_ok(cert, signature, renewal_message(device_id, timestamp, csr_pem)):
        raise refused
    csr = load_csr(csr_pem)
    superseded = conn.execute(
        certificates.update()
        .where(certificates.c.serial == current.serial, certificates.c.superseded_at.is_(None))
        .values(superseded_at=int(now))
    )
    if superseded.rowcount != 1:  # a concurrent renewal with the same certificate won
        raise refused
    issued = _issue(conn, ca, csr, device_id, now=now, lifetime=lifetime)
    audit.record(
        conn, at=now, actor=f"device:{device_id}", address=address, action="device.renewed", target=device_id,
        serial=issued.serial, previous=current.serial,
    )  # fmt: skip
    return issued


def _signature_ok(cert: x509.Certificate, signature: bytes, message: bytes) -> bool:
    key = cert.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        else:
            return False
    except InvalidSignature:
        return False
    return True
