"""``GET /v1/devices`` (the fleet, paged on device id) and ``GET /v1/devices/{id}``: when
each device was last seen, online or not, what it reports (backlog, evictions), what it
measures, its open alarms and its failing tests.  Scope ``devices:read``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict

from edge_cloud.ingest.api.deps import DevicesRead, State
from edge_cloud.ingest.api.fleet_cursors import decode_key, encode_key
from edge_cloud.ingest.api.fleet_models import AlarmOut, TestResultOut
from edge_cloud.ingest.api.fleet_params import CURSOR, CURSOR_404, DEFAULT_LIMIT, DEVICE_ID, MAX_LIMIT
from edge_cloud.ingest.queries.devices import get_device, list_devices

LISTING = "devices"

router = APIRouter(tags=["devices"])


class DeviceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    device_id: str
    first_seen: datetime
    last_seen: datetime
    """Receive time of its latest message (a retained status does not move it)."""
    online: bool | None
    """From its births and wills; null: no status heard."""
    status_at: datetime | None
    boot: str | None
    epoch: str | None
    pending_events: int | None
    """The outbox backlog its latest birth or clean stop reported."""
    evicted_events: int
    """What its gap events reported evicted, summed."""
    dropped_events: int
    """What its ``not_committed`` gap events reported never committed (no seqs), summed."""
    sensors: list[str]
    open_alarms: list[AlarmOut]
    failing_tests: list[TestResultOut]
    """The latest run of each (sensor, test), where it is a fail or an error."""


class DevicePage(BaseModel):
    devices: list[DeviceOut]
    next_cursor: str | None
    """Pass as ``cursor`` for the next page; null on the last one."""


@router.get("/v1/devices", response_model=DevicePage, responses=CURSOR)
def devices(
    state: State,
    _: DevicesRead,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> DevicePage:
    """The fleet, by device id."""
    after = str(decode_key(LISTING, cursor, (str,))[0]) if cursor is not None else None
    with state.engine.connect() as conn:
        page, more = list_devices(conn, limit=limit, after_id=after)
    return DevicePage(
        devices=[DeviceOut.model_validate(d) for d in page],
        next_cursor=encode_key(LISTING, page[-1].device_id) if more else None,
    )


@router.get("/v1/devices/{device_id}", response_model=DeviceOut, responses=CURSOR_404)
def device(state: State, _: DevicesRead, device_id: Annotated[str, Path(pattern=DEVICE_ID)]) -> DeviceOut:
    """One device; 404 if the ingest never stored anything of it."""
    with state.engine.connect() as conn:
        found = get_device(conn, device_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"device {device_id} was never seen")
    return DeviceOut.model_validate(found)
