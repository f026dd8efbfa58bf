"""Long-lived API keys for scripts: ``eak_<id>.<secret>``, stored as SHA-256, scoped, revocable.

A script either presents the key as a bearer token to this service, or exchanges it at
``POST /v1/token`` (``grant_type=client_credentials``) for an access token that the other
cloud services verify from the JWKS like any other.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from edge_cloud.auth import audit, opaque
from edge_cloud.auth.errors import BadRequest, NotFound
from edge_cloud.auth.tables import api_keys
from edge_cloud.common.jwt_verify import SCOPES

KEY_ID_PATTERN = r"[0-9a-f]{16}"


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    scopes: tuple[str, ...]


def create(
    conn: Connection,
    *,
    name: str,
    scopes: list[str],
    now: float,
    actor: str,
    ttl: float | None = None,
    address: str | None = None,
) -> tuple[ApiKey, str]:
    """The key's record and its secret form (shown once)."""
    unknown = set(scopes) - set(SCOPES)
    if unknown or not scopes:
        raise BadRequest(f"scopes must be a non-empty subset of {', '.join(SCOPES)}")
    key_id = secrets.token_hex(8)
    secret = opaque.new_secret("")
    conn.execute(
        api_keys.insert().values(
            id=key_id,
            name=name,
            secret_hash=opaque.digest(secret),
            scopes=" ".join(scopes),
            created_by=actor,
            created_at=int(now),
            expires_at=int(now + ttl) if ttl else None,
        )
    )
    audit.record(
        conn, at=now, actor=actor, address=address, action="api_key.issued", target=key_id,
        name=name, scopes=scopes,
    )  # fmt: skip
    return ApiKey(key_id, name, tuple(scopes)), f"{opaque.API_KEY}{key_id}.{secret}"


def authenticate(conn: Connection, presented: str, *, now: float) -> ApiKey | None:
    if not presented.startswith(opaque.API_KEY) or "." not in presented:
        return None
    key_id, _, secret = presented.removeprefix(opaque.API_KEY).partition(".")
    if not re.fullmatch(KEY_ID_PATTERN, key_id):  # never to the database: a NUL there is a 422, uncounted
        return None
    row = conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).first()
    if row is None or not opaque.same_digest(secret, row.secret_hash):
        return None
    if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        return None
    conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(last_used_at=int(now)))
    return ApiKey(row.id, row.name, tuple(row.scopes.split()))


def revoke(conn: Connection, key_id: str, *, now: float, actor: str, address: str | None = None) -> None:
    done = conn.execute(
        api_keys.update()
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=int(now))
    )
    if done.rowcount != 1:
        raise NotFound(f"no active API key {key_id!r}")
    audit.record(conn, at=now, actor=actor, address=address, action="api_key.revoked", target=key_id)


def revoke_issued_by(conn: Connection, issuer: str, *, now: float, actor: str, reason: str) -> list[str]:
    """Revoke the active keys ``issuer`` issued, the keys those keys issued, and so on (an
    admin key can issue keys): the ids, each audited."""
    revoked: list[str] = []
    issuers = {issuer}
    while issuers:
        ids = list(
            conn.execute(
                sa.select(api_keys.c.id).where(
                    api_keys.c.created_by.in_(sorted(issuers)), api_keys.c.revoked_at.is_(None)
                )
            ).scalars()
        )
        if not ids:
            break
        conn.execute(api_keys.update().where(api_keys.c.id.in_(ids)).values(revoked_at=int(now)))
        for key_id in ids:
            audit.record(conn, at=now, actor=actor, action="api_key.revoked", target=key_id, reason=reason)
        revoked += ids
        issuers = {principal_name(key_id) for key_id in ids}
    return revoked


def principal_name(key_id: str) -> str:
    """The name a key acts under: the ``sub`` of the access tokens it gets, ``created_by`` of the keys it issues."""
    return f"api-key:{key_id}"


def list_keys(conn: Connection) -> list[sa.Row[tuple[object, ...]]]:
    return list(conn.execute(sa.select(api_keys).order_by(api_keys.c.created_at)))
