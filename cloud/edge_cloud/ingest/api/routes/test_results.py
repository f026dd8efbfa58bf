"""``GET /v1/devices/{id}/test-results``: a device's test runs, filtered, paged on
``(ts, event_id)`` (newest first unless ``order=asc``).  Scope ``events:read``."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel

from edge_cloud.ingest.api import cursors
from edge_cloud.ingest.api.deps import EventsRead, State
from edge_cloud.ingest.api.fleet_cursors import decode_event_key
from edge_cloud.ingest.api.fleet_models import TestResultOut
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
from edge_cloud.ingest.queries.devices import device_known
from edge_cloud.ingest.queries.test_results import list_test_results

router = APIRouter(tags=["events"])


class TestResultPage(BaseModel):
    device_id: str
    test_results: list[TestResultOut]
    next_cursor: str | None


@router.get(
    "/v1/devices/{device_id}/test-results",
    response_model=TestResultPage,
    responses=CURSOR_404,
)
def test_results(
    state: State,
    _: EventsRead,
    device_id: Annotated[str, Path(pattern=DEVICE_ID)],
    status_: Annotated[Literal["pass", "fail", "error"] | None, Query(alias="status")] = None,
    sensor: Annotated[str | None, Query(pattern=SENSOR)] = None,
    test: Annotated[str | None, Query(pattern=NAME)] = None,
    since: Annotated[Time | None, Query(description="from this time on (inclusive)")] = None,
    until: Annotated[Time | None, Query(description="before this time (exclusive)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    order: Literal["asc", "desc"] = "desc",
) -> TestResultPage:
    """Test runs in time order, each with its whole ``data`` (measured values, limits)."""
    since, until = window(since, until)
    listing = f"test-results:{order}"
    start_after = decode_event_key(listing, cursor)
    with state.engine.connect() as conn:
        if not device_known(conn, device_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"device {device_id} was never seen")
        rows = list_test_results(
            conn,
            device_id,
            limit=limit + 1,
            status=status_,
            sensor=sensor,
            test=test,
            since=since,
            until=until,
            start_after=start_after,
            descending=order == "desc",
        )
    page = rows[:limit]
    return TestResultPage(
        device_id=device_id,
        test_results=[TestResultOut.model_validate(t) for t in page],
        next_cursor=cursors.encode(listing, page[-1].ts, page[-1].event_id) if len(rows) > limit else None,
    )
