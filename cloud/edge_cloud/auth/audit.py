"""The audit log: one row per change (device created, enrolled, revoked, key issued, …)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.engine import Connection

from edge_cloud.auth.tables import audit_log


def record(
    conn: Connection,
    *,
    at: float,
    actor: str,
    action: str,
    target: str | None = None,
    address: str | None = None,
    **detail: Any,
) -> None:
    """Write in the caller's transaction, so the change and its record commit together."""
    conn.execute(
        audit_log.insert().values(
            at=int(at),
            actor=actor,
            action=action,
            target=target,
            address=address,
            detail=json.dumps(detail, sort_keys=True, default=str) if detail else None,
        )
    )
