"""``quarantine``: the messages and events the ingest refused, newest first, paged on ``id``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from edge_cloud.ingest.queries.fleet import aware
from edge_cloud.ingest.tables import quarantine as qt


@dataclass(frozen=True)
class Quarantined:
    id: int
    received_at: datetime
    topic: str
    device_id: str | None
    reason: str
    detail: str
    size: int
    head: bytes


def list_quarantine(
    conn: Connection,
    *,
    limit: int,
    device_id: str | None = None,
    reason: str | None = None,
    before_id: int | None = None,
) -> list[Quarantined]:
    """Up to ``limit`` refusals by descending ``id`` (the insertion order), below ``before_id``."""
    where = []
    if device_id is not None:
        where.append(qt.c.device_id == device_id)
    if reason is not None:
        where.append(qt.c.reason == reason)
    if before_id is not None:
        where.append(qt.c.id < before_id)
    query = (
        sa.select(
            qt.c.id,
            qt.c.received_at,
            qt.c.topic,
            qt.c.device_id,
            qt.c.reason,
            qt.c.detail,
            qt.c.size,
            qt.c.head,
        )
        .where(*where)
        .order_by(qt.c.id.desc())
        .limit(limit)
    )
    return [
        Quarantined(
            id=r.id,
            received_at=aware(r.received_at),
            topic=r.topic,
            device_id=r.device_id,
            reason=r.reason,
            detail=r.detail,
            size=r.size,
            head=bytes(r.head),
        )
        for r in conn.execute(query)
    ]
