"""Managing operators: list, disable, enable, delete, set or change a password.

Disabling or deleting an operator ends what it holds: its refresh tokens are revoked, its
API keys too (and the keys those keys issued), and its access tokens are refused by the
subject check (:mod:`edge_cloud.auth.subjects`).  A new password ends its sessions the
same way (a password is changed because it may be known to someone else).  The last
active administrator can be neither disabled nor deleted: nobody could log in to undo it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from edge_cloud.auth import api_keys, audit
from edge_cloud.auth.errors import BadRequest, Conflict, Forbidden, NotFound
from edge_cloud.auth.passwords import check_strength, hash_password, verify_password
from edge_cloud.auth.tables import operators, refresh_tokens


@dataclass(frozen=True)
class Ended:
    """What a disabling, deletion or new password revoked."""

    refresh_tokens_revoked: int = 0
    api_keys_revoked: list[str] = field(default_factory=list)


def list_operators(conn: Connection) -> list[sa.Row[Any]]:
    return list(conn.execute(sa.select(operators).order_by(operators.c.username)))


def get(conn: Connection, username: str) -> sa.Row[Any]:
    row = conn.execute(sa.select(operators).where(operators.c.username == username)).first()
    if row is None:
        raise NotFound(f"no operator {username!r}")
    return row


def set_disabled(
    conn: Connection, username: str, disabled: bool, *, now: float, actor: str, address: str | None = None
) -> Ended:
    row = get(conn, username)
    if row.disabled == disabled:
        raise Conflict(f"operator {username!r} is already {'disabled' if disabled else 'enabled'}")
    if disabled:
        _keep_an_administrator(conn, row)
    conn.execute(operators.update().where(operators.c.id == row.id).values(disabled=disabled))
    ended = _end_sessions(conn, row, now=now, actor=actor, why="disabled") if disabled else Ended()
    action = "operator.disabled" if disabled else "operator.enabled"
    audit.record(conn, at=now, actor=actor, address=address, action=action, target=username, **asdict(ended))
    return ended


def delete(conn: Connection, username: str, *, now: float, actor: str, address: str | None = None) -> Ended:
    row = get(conn, username)
    _keep_an_administrator(conn, row)
    ended = _end_sessions(conn, row, now=now, actor=actor, why="deleted")
    conn.execute(refresh_tokens.delete().where(refresh_tokens.c.operator_id == row.id))
    conn.execute(operators.delete().where(operators.c.id == row.id))
    audit.record(
        conn,
        at=now,
        actor=actor,
        address=address,
        action="operator.deleted",
        target=username,
        **asdict(ended),
    )
    return ended


def set_password(
    conn: Connection,
    username: str,
    password: str,
    *,
    now: float,
    actor: str,
    address: str | None = None,
    old_password: str | None = None,
) -> Ended:
    """A new password (with ``old_password``: the operator changing its own, which must
    match, else :class:`Forbidden`).  Every session of the operator ends."""
    row = get(conn, username)
    if old_password is not None and not verify_password(row.password_hash, old_password):
        raise Forbidden("the old password is wrong")
    problem = check_strength(password)
    if problem:
        raise BadRequest(problem)
    conn.execute(
        operators.update().where(operators.c.id == row.id).values(password_hash=hash_password(password))
    )
    ended = _end_sessions(conn, row, now=now, actor=actor, why="given a new password", keys=False)
    action = "operator.password_changed" if old_password is not None else "operator.password_set"
    audit.record(conn, at=now, actor=actor, address=address, action=action, target=username, **asdict(ended))
    return ended


def _end_sessions(
    conn: Connection, row: sa.Row[Any], *, now: float, actor: str, why: str, keys: bool = True
) -> Ended:
    """Revoke the operator's refresh tokens (and API keys) and refuse its access tokens
    issued until now."""
    conn.execute(operators.update().where(operators.c.id == row.id).values(tokens_after=int(now)))
    sessions = conn.execute(
        refresh_tokens.update()
        .where(refresh_tokens.c.operator_id == row.id, refresh_tokens.c.revoked_at.is_(None))
        .values(revoked_at=int(now))
    ).rowcount
    if not keys:
        return Ended(sessions)
    reason = f"issued by operator {row.username!r}, {why}"
    return Ended(sessions, api_keys.revoke_issued_by(conn, row.username, now=now, actor=actor, reason=reason))


def _keep_an_administrator(conn: Connection, row: sa.Row[Any]) -> None:
    if row.disabled or "admin" not in row.scopes.split():
        return
    others = conn.execute(
        sa.select(operators.c.scopes).where(operators.c.id != row.id, operators.c.disabled == sa.false())
    ).scalars()
    if not any("admin" in scopes.split() for scopes in others):
        raise Conflict(f"{row.username!r} is the last active administrator; create or enable another first")
