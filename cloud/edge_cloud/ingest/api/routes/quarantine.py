"""``GET /v1/quarantine``: what the ingest refused (reason, detail, topic, device, size, the
first bytes in base64), newest first, paged on the row id.  Scope ``devices:read``."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, get_args

from fastapi import APIRouter, Query
from pydantic import BaseModel

from edge_cloud.ingest.api.deps import DevicesRead, State
from edge_cloud.ingest.api.fleet_cursors import decode_key, encode_key
from edge_cloud.ingest.api.fleet_params import CURSOR, DEFAULT_LIMIT, DEVICE_ID, MAX_LIMIT
from edge_cloud.ingest.queries.quarantine import list_quarantine
from edge_cloud.ingest.store.model import RefusalReason

LISTING = "quarantine"
REASONS = get_args(RefusalReason)

router = APIRouter(tags=["quarantine"])


class QuarantinedOut(BaseModel):
    id: int
    received_at: datetime
    reason: str
    detail: str
    topic: str
    device_id: str | None
    size: int
    """Payload bytes as received."""
    head_base64: str
    """The first bytes of the payload (up to 256), base64."""


class QuarantinePage(BaseModel):
    quarantine: list[QuarantinedOut]
    next_cursor: str | None


@router.get("/v1/quarantine", response_model=QuarantinePage, responses=CURSOR)
def quarantine(
    state: State,
    _: DevicesRead,
    device_id: Annotated[str | None, Query(pattern=DEVICE_ID)] = None,
    reason: Annotated[RefusalReason | None, Query(description=f"one of {', '.join(REASONS)}")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> QuarantinePage:
    """Refused messages and events, newest first."""
    before = int(decode_key(LISTING, cursor, (int,))[0]) if cursor is not None else None
    with state.engine.connect() as conn:
        rows = list_quarantine(conn, limit=limit + 1, device_id=device_id, reason=reason, before_id=before)
    page = rows[:limit]
    return QuarantinePage(
        quarantine=[
            QuarantinedOut(
                id=q.id,
                received_at=q.received_at,
                reason=q.reason,
                detail=q.detail,
                topic=q.topic,
                device_id=q.device_id,
                size=q.size,
                head_base64=base64.b64encode(q.head).decode(),
            )
            for q in page
        ],
        next_cursor=encode_key(LISTING, page[-1].id) if len(rows) > limit else None,
    )
