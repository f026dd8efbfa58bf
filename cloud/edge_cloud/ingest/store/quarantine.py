"""The quarantine: refused messages and events, newest ``keep`` rows kept."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from edge_cloud.ingest.store.model import Refusal
from edge_cloud.ingest.store.prepare import QUARANTINE_HEAD_BYTES
from edge_cloud.ingest.tables import quarantine

DETAIL_CHARS = 1000
TOPIC_CHARS = 256


def record(conn: Connection, refusals: Sequence[Refusal], *, keep: int) -> None:
    """Insert ``refusals`` and drop the oldest rows beyond ``keep``."""
    if not refusals:
        return
    conn.execute(
        quarantine.insert(),
        [
            {
                "received_at": r.received_at,
                "topic": _clean(r.topic)[:TOPIC_CHARS],
                "device_id": r.device_id,
                "reason": r.reason,
                "detail": _clean(r.detail)[:DETAIL_CHARS],
                "size": min(r.size, 2**31 - 1),
                "head": r.head[:QUARANTINE_HEAD_BYTES],
            }
            for r in refusals
        ],
    )
    newest_dropped = (
        sa.select(quarantine.c.id).order_by(quarantine.c.id.desc()).limit(1).offset(keep).scalar_subquery()
    )
    conn.execute(quarantine.delete().where(quarantine.c.id <= newest_dropped))


def _clean(text: str) -> str:
    """A topic or detail may quote what the device sent: no NUL (PostgreSQL text refuses it)."""
    return text.replace("\x00", "\\x00")
