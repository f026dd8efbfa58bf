"""Operators (people), their passwords, and the refresh tokens of their sessions.

Refresh tokens rotate: each use returns a new one and marks the old one used.  Using a
used one again means it was stolen (or replayed): the whole family is revoked, so the
thief and the owner both have to log in again.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from edge_cloud.auth import audit, opaque
from edge_cloud.auth.errors import BadRequest, Conflict, NotAuthenticated
from edge_cloud.auth.passwords import check_strength, hash_password, verify_password
from edge_cloud.auth.tables import operators, refresh_tokens
from edge_cloud.common.jwt_verify import SCOPES

USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"


def valid_username(username: str) -> bool:
    return re.fullmatch(USERNAME_PATTERN, username) is not None


@dataclass(frozen=True)
class Operator:
    id: str
    username: str
    scopes: tuple[str, ...]


def create_operator(
    conn: Connection, *, username: str, password: str, scopes: list[str], now: float, actor: str
) -> Operator:
    if not valid_username(username):
        raise BadRequest("user names are 1-64 characters: letters, digits, _ . @ -")
    problem = check_strength(password)
    if problem:
        raise BadRequest(problem)
    unknown = set(scopes) - set(SCOPES)
    if unknown:
        raise BadRequest(f"unknown scopes {sorted(unknown)}; known: {', '.join(SCOPES)}")
    if conn.execute(sa.select(operators.c.id).where(operators.c.username == username)).first():
        raise Conflict(f"operator {username!r} exists")
    op_id = str(uuid.uuid4())
    conn.execute(
        operators.insert().values(
            id=op_id,
            username=username,
            password_hash=hash_password(password),
            scopes=" ".join(scopes),
            disabled=False,
            created_at=int(now),
            tokens_after=int(now),
        )
    )
    audit.record(conn, at=now, actor=actor, action="operator.created", target=username, scopes=scopes)
    return Operator(op_id, username, tuple(scopes))


def authenticate(conn: Connection, username: str, password: str) -> Operator | None:
    row = conn.execute(sa.select(operators).where(operators.c.username == username)).first()
    ok = verify_password(row.password_hash if row else None, password)
    if not ok or row is None or row.disabled:
        return None
    return Operator(row.id, row.username, tuple(row.scopes.split()))


def issue_refresh_token(
    conn: Connection,
    operator: Operator,
    scopes: list[str],
    *,
    now: float,
    ttl: float,
    family: str | None = None,
) -> str:
    secret = opaque.new_secret(opaque.REFRESH)
    conn.execute(
        refresh_tokens.insert().values(
            id=str(uuid.uuid4()),
            token_hash=opaque.digest(secret),
            family_id=family or str(uuid.uuid4()),
            operator_id=operator.id,
            scopes=" ".join(scopes),
            created_at=int(now),
            expires_at=int(now + ttl),
        )
    )
    return secret


def rotate_refresh_token(
    conn: Connection, secret: str, *, now: float, ttl: float, address: str | None = None
) -> tuple[Operator, list[str], str] | None:
    """Spend a refresh token: the operator, its scopes and the new refresh token.

    None if it had been spent before: its whole family is now revoked (commit, then refuse)."""
    row = conn.execute(
        sa.select(
            refresh_tokens,
            operators.c.username,
            operators.c.scopes.label("operator_scopes"),
            operators.c.disabled,
        )
        .join(operators, operators.c.id == refresh_tokens.c.operator_id)
        .where(refresh_tokens.c.token_hash == opaque.digest(secret))
    ).first()
    if row is None or row.revoked_at is not None or row.expires_at <= now or row.disabled:
        raise NotAuthenticated("refresh token unknown, expired or revoked; log in again")
    if row.used_at is not None:
        conn.execute(
            refresh_tokens.update()
            .where(refresh_tokens.c.family_id == row.family_id)
            .values(revoked_at=int(now))
        )
        audit.record(
            conn, at=now, actor=row.username, address=address, action="refresh_token.reused",
            target=row.family_id, reason="a spent refresh token was presented again: session revoked",
        )  # fmt: skip
        return None  # the caller commits the revocation, then refuses
    spent = conn.execute(
        refresh_tokens.update()
        .where(refresh_tokens.c.id == row.id, refresh_tokens.c.used_at.is_(None))
        .values(used_at=int(now))
    )
    if spent.rowcount != 1:  # a concurrent request spent it first
        raise NotAuthenticated("refresh token already used; log in again")
    operator = Operator(row.operator_id, row.username, tuple(row.operator_scopes.split()))
    # Scopes can only shrink: those the operator still has.
    scopes = [s for s in row.scopes.split() if s in operator.scopes or "admin" in operator.scopes]
    new = issue_refresh_token(conn, operator, scopes, now=now, ttl=ttl, family=row.family_id)
    return operator, scopes, new
