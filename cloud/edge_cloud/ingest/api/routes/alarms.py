"""``GET /v1/devices/{id}/alarms``: a device's alarms, filtered, newest first, paged on
``(ts, event_id)``.  Scope ``events:read``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel

from edge_cloud.ingest.api import cursors
from edge_cloud.ingest.api.deps import EventsRead, State
from edge_cloud.ingest.api.fleet_cursors import decode_event_key
from edge_cloud.ingest.api.fleet_models import AlarmOut
from edge_cloud.ingest.api.fleet_params import (
    CURSOR_404,
    DEFAULT_LIMIT,
    DEVICE_ID,
    MAX_LIMIT,
    NAME,
    SENSOR,
    Time,
    window,
)
from edge_cloud.ingest.queries.alarms import list_alarms
from edge_cloud.ingest.queries.devices import device_known

LISTING = "alarms:desc"

router = APIRouter(tags=["events"])


class AlarmPage(BaseModel):
    device_id: str
    alarms: list[AlarmOut]
    next_cursor: str | None


@router.get(
    "/v1/devices/{device_id}/alarms",
    response_model=AlarmPage,
    responses=CURSOR_404,
)
def alarms(
    state: State,
    _: EventsRead,
    device_id: Annotated[str, Path(pattern=DEVICE_ID)],
    code: Annotated[str | None, Query(pattern=NAME)] = None,
    sensor: Annotated[str | None, Query(pattern=SENSOR)] = None,
    since: Annotated[Time | None, Query(description="from this time on (inclusive)")] = None,
    until: Annotated[Time | None, Query(description="before this time (exclusive)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> AlarmPage:
    """Alarms the device raised, newest first."""
    since, until = window(since, until)
    start_after = decode_event_key(LISTING, cursor)
    with state.engine.connect() as conn:
        if not device_known(conn, device_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"device {device_id} was never seen")
        rows = list_alarms(
            conn,
            device_id,
            limit=limit + 1,
            code=code,
            sensor=sensor,
            since=since,
            until=until,
            start_after=start_after,
        )
    page = rows[:limit]
    return AlarmPage(
        device_id=device_id,
        alarms=[AlarmOut.model_validate(a) for a in page],
        next_cursor=cursors.encode(LISTING, page[-1].ts, page[-1].event_id) if len(rows) > limit else None,
    )
