"""The device registry: devices, their enrollment and claim tokens, their states.

States: ``pending`` (created, not enrolled) → ``active`` (enrolled) ⇄ ``disabled``;
any → ``revoked`` (final: its certificates go on the CRL, the broker denies it
everything).  Every change writes an audit row in the same transaction.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from edge_cloud.auth import audit, opaque
from edge_cloud.auth.errors import BadRequest, Conflict, NotFound
from edge_cloud.auth.tables import certificates, devices, enrollment_tokens

DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
"""Same as the agent's: a topic level and a certificate CN (no '/', '+', '#', spaces)."""


@dataclass(frozen=True)
class Actor:
    """Who makes a change, for the audit log."""

    name: str
    address: str | None = None


def check_device_id(device_id: str, *, reserved: set[str]) -> None:
    if not re.fullmatch(DEVICE_ID_PATTERN, device_id):  # not match: "$" also matches before a final "\n"
        raise BadRequest(f"device id {device_id!r} must match {DEVICE_ID_PATTERN} (letters, digits, _ . : -)")
    if device_id in reserved:
        raise BadRequest(f"device id {device_id!r} is reserved for a cloud service")


def create_device(
    conn: Connection,
    device_id: str,
    *,
    description: str | None,
    now: float,
    token_ttl: float,
    actor: Actor,
    reserved: set[str],
) -> tuple[str, int]:
    """A new pending device and its one-time enrollment token (secret, expiry)."""
    check_device_id(device_id, reserved=reserved)
    if conn.execute(sa.select(devices.c.id).where(devices.c.id == device_id)).first():
        raise Conflict(f"device {device_id!r} exists")
    conn.execute(
        devices.insert().values(
            id=device_id, status="pending", description=description, created_at=int(now), changed_at=int(now)
        )
    )
    audit.record(
        conn, at=now, actor=actor.name, address=actor.address, action="device.created", target=device_id
    )
    return issue_device_token(conn, device_id, now=now, ttl=token_ttl, actor=actor)


def issue_device_token(
    conn: Connection, device_id: str, *, now: float, ttl: float, actor: Actor
) -> tuple[str, int]:
    """A fresh one-time token bound to ``device_id`` (earlier unused ones are revoked)."""
    row = get_device(conn, device_id)
    if row.status == "revoked":
        raise Conflict(f"device {device_id!r} is revoked; create a new device")
    conn.execute(
        enrollment_tokens.update()
        .where(enrollment_tokens.c.device_id == device_id, enrollment_tokens.c.revoked_at.is_(None))
        .values(revoked_at=int(now))
    )
    _token_id, secret, expires = _insert_token(
        conn, kind="device", device_id=device_id, uses=1, now=now, ttl=ttl, actor=actor
    )
    return secret, expires


def create_claim_token(
    conn: Connection, *, uses: int, now: float, ttl: float, actor: Actor
) -> tuple[str, str, int]:
    """A batch claim token for factory images: (id, secret, expiry)."""
    if uses < 1:
        raise BadRequest("uses must be at least 1")
    return _insert_token(conn, kind="claim", device_id=None, uses=uses, now=now, ttl=ttl, actor=actor)


def revoke_claim_token(conn: Connection, token_id: str, *, now: float, actor: Actor) -> None:
    done = conn.execute(
        enrollment_tokens.update()
        .where(
            enrollment_tokens.c.id == token_id,
            enrollment_tokens.c.kind == "claim",
            enrollment_tokens.c.revoked_at.is_(None),
        )
        .values(revoked_at=int(now))
    )
    if done.rowcount != 1:
        raise NotFound(f"no active claim token {token_id!r}")
    audit.record(
        conn, at=now, actor=actor.name, address=actor.address, action="claim_token.revoked", target=token_id
    )


def _insert_token(
    conn: Connection, *, kind: str, device_id: str | None, uses: int, now: float, ttl: float, actor: Actor
) -> tuple[str, str, int]:
    token_id = str(uuid.uuid4())
    secret = opaque.new_secret(opaque.ENROLLMENT if kind == "device" else opaque.CLAIM)
    expires = int(now + ttl)
    conn.execute(
        enrollment_tokens.insert().values(
            id=token_id,
            token_hash=opaque.digest(secret),
            kind=kind,
            device_id=device_id,
            uses_left=uses,
            max_uses=uses,
            created_by=actor.name,
            created_at=int(now),
            expires_at=expires,
        )
    )
    action = "enrollment_token.issued" if kind == "device" else "claim_token.issued"
    audit.record(
        conn,
        at=now,
        actor=actor.name,
        address=actor.address,
        action=action,
        target=device_id or token_id,
        uses=uses,
    )
    return token_id, secret, expires


def get_device(conn: Connection, device_id: str) -> sa.Row[tuple[object, ...]]:
    row = conn.execute(sa.select(devices).where(devices.c.id == device_id)).first()
    if row is None:
        raise NotFound(f"no device {device_id!r}")
    return row


def list_devices(
    conn: Connection, *, status: str | None = None, limit: int = 1000, offset: int = 0
) -> list[sa.Row[tuple[object, ...]]]:
    query = sa.select(devices).order_by(devices.c.id).limit(limit).offset(offset)
    if status is not None:
        query = query.where(devices.c.status == status)
    return list(conn.execute(query))


def current_certificate(conn: Connection, device_id: str) -> sa.Row[tuple[object, ...]] | None:
    return conn.execute(
        sa.select(certificates)
        .where(
            certificates.c.device_id == device_id,
            certificates.c.revoked_at.is_(None),
            certificates.c.superseded_at.is_(None),
        )
        .order_by(certificates.c.issued_at.desc())
        .limit(1)
    ).first()


def set_status(conn: Connection, device_id: str, status: str, *, now: float, actor: Actor) -> None:
    """disable / enable / revoke; revoking also revokes every certificate and token of the device."""
    row = get_device(conn, device_id)
    allowed = {
        "disabled": {"active", "pending"},
        "active": {"disabled"},
        "revoked": {"pending", "active", "disabled"},
    }[status]
    if row.status not in allowed:
        raise Conflict(f"device {device_id!r} is {row.status}; cannot make it {status}")
    if status == "active" and row.enrolled_at is None:
        status = "pending"
    conn.execute(devices.update().where(devices.c.id == device_id).values(status=status, changed_at=int(now)))
    if status == "revoked":
        revoke_certificates(conn, device_id, now=now)
        conn.execute(
            enrollment_tokens.update()
            .where(enrollment_tokens.c.device_id == device_id, enrollment_tokens.c.revoked_at.is_(None))
            .values(revoked_at=int(now))
        )
        conn.execute(devices.update().where(devices.c.id == device_id).values(password_hash=None))
    action = {
        "disabled": "device.disabled",
        "active": "device.enabled",
        "pending": "device.enabled",
        "revoked": "device.revoked",
    }[status]
    audit.record(conn, at=now, actor=actor.name, address=actor.address, action=action, target=device_id)


def revoke_certificates(conn: Connection, device_id: str, *, now: float, keep: str | None = None) -> None:
    query = certificates.update().where(
        certificates.c.device_id == device_id, certificates.c.revoked_at.is_(None)
    )
    if keep is not None:
        query = query.where(certificates.c.serial != keep)
    conn.execute(query.values(revoked_at=int(now)))
