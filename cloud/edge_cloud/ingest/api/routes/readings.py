"""``GET /v1/devices/{id}/readings``: a device's values in time order, paged on ``(ts,
event_id, sensor, quantity)`` (oldest first unless ``order=desc``), or with ``every`` its
buckets (count, min, mean, max), paged on ``(start, sensor, quantity)``.  Scope
``events:read``.

The cursor is bound to the query: it names a digest of the device, ``sensor``,
``quantity``, ``since``, ``until``, ``every`` and ``order`` (not ``limit``: the page size
may change on the way), so a cursor taken from another query is a 400 rather than a
page of the wrong rows.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict

from edge_cloud.ingest.api.cursors import CursorInvalid
from edge_cloud.ingest.api.deps import EventsRead, State
from edge_cloud.ingest.api.fleet_cursors import decode_key, encode_key
from edge_cloud.ingest.api.fleet_params import CURSOR_404, DEVICE_ID, NAME, SENSOR, Time, invalid, window
from edge_cloud.ingest.queries.devices import device_known
from edge_cloud.ingest.queries.readings import (
    BucketKey,
    ReadingKey,
    bucket_count,
    bucket_origin,
    list_buckets,
    list_readings,
)

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
"""Readings come by the thousand (a sensor every few seconds): larger pages than the
other listings'."""
MAX_BUCKETS = 100_000
"""``every`` over the window may make no more buckets than this (a chart has no use for
more points than pixels; a 1 s bucket over a year would be a full scan in disguise)."""
EVERY = re.compile(r"^([1-9][0-9]{0,8})([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_EVERY = timedelta(days=366)

router = APIRouter(tags=["events"])


class ReadingOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    ts: datetime
    sensor: str
    quantity: str
    value: float
    """As stored: calibrated on the device when ``cal`` names a calibration."""
    event_id: str
    epoch: str
    seq: int
    clock_synced: bool
    """False: the device's clock was not synchronised when it took the reading."""
    cal: int | None


class BucketOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    start: datetime
    """The bucket is ``[start, start + every)``, aligned on 1970-01-01 UTC (``1h``: on the
    hour); the first may start before ``since`` and holds only rows from ``since`` on."""
    sensor: str
    quantity: str
    count: int
    min: float
    mean: float
    max: float


class ReadingsPage(BaseModel):
    device_id: str
    every_s: int | None
    """The bucket length asked for, in seconds; null: the readings themselves."""
    readings: list[ReadingOut]
    """Without ``every``; empty with it."""
    buckets: list[BucketOut]
    """With ``every``: the non-empty buckets; empty without it."""
    next_cursor: str | None


def parse_every(text: str) -> timedelta:
    """``30s``, ``5m``, ``1h``, ``1d`` … up to ``366d``; a 422 naming ``every`` otherwise."""
    match = EVERY.match(text)
    if match is None:
        raise invalid("every", "a whole number and a unit: s, m, h or d (30s, 5m, 1h, 1d)", text)
    every = timedelta(seconds=int(match.group(1)) * _UNIT_S[match.group(2)])
    if every > MAX_EVERY:
        raise invalid("every", "at most 366d", text)
    return every


def _listing(
    device_id: str,
    sensor: str | None,
    quantity: str | None,
    since: datetime | None,
    until: datetime | None,
    every: timedelta | None,
    order: str,
) -> str:
    """The cursor's listing name: the order and a digest of what the query asks."""
    asked = [
        device_id,
        sensor,
        quantity,
        since.isoformat() if since else None,
        until.isoformat() if until else None,
        every // timedelta(seconds=1) if every else None,
    ]
    digest = hashlib.sha256(json.dumps(asked).encode()).hexdigest()[:16]
    return f"readings:{order}:{digest}"


def _time(text: str) -> datetime:
    """A cursor's time, in UTC; :class:`CursorInvalid` unless one :func:`_iso` wrote."""
    try:
        ts = datetime.fromisoformat(text)
        if ts.tzinfo is None:
            raise ValueError(text)
        return ts.astimezone(UTC)
    except (ValueError, OverflowError):
        raise CursorInvalid("cursor is not one this API handed out: pass next_cursor as it was") from None


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat()


def _reading_key(listing: str, cursor: str) -> ReadingKey:
    ts, event_id, sensor, quantity = decode_key(listing, cursor, (str, str, str, str))
    return (_time(str(ts)), str(event_id), str(sensor), str(quantity))


def _bucket_key(listing: str, cursor: str, since: datetime, until: datetime, every: timedelta) -> BucketKey:
    start_text, sensor, quantity = decode_key(listing, cursor, (str, str, str))
    start = _time(str(start_text))
    # A bucket start this query cannot have made (the digest only binds, it does not sign).
    origin = bucket_origin(since, every)
    if not origin <= start < until or (start - origin) % every:
        raise CursorInvalid("cursor is not one this API handed out: pass next_cursor as it was")
    return (start, str(sensor), str(quantity))


@router.get(
    "/v1/devices/{device_id}/readings",
    response_model=ReadingsPage,
    responses=CURSOR_404,
)
def readings(
    state: State,
    _: EventsRead,
    device_id: Annotated[str, Path(pattern=DEVICE_ID)],
    sensor: Annotated[str | None, Query(pattern=SENSOR, description="only this sensor")] = None,
    quantity: Annotated[str | None, Query(pattern=NAME, description="only this quantity")] = None,
    since: Annotated[Time | None, Query(description="from this time on (inclusive)")] = None,
    until: Annotated[Time | None, Query(description="before this time (exclusive)")] = None,
    every: Annotated[
        str | None,
        Query(
            pattern=EVERY.pattern,
            description="buckets of this length from since (30s, 1m, 1h, 1d … 366d): count, min, mean, "
            f"max each; needs since and until, at most {MAX_BUCKETS:,} buckets",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    order: Literal["asc", "desc"] = "asc",
) -> ReadingsPage:
    """Readings in time order (several series merged: ties on ``ts`` by event id, sensor,
    quantity), or with ``every`` their buckets in ``(start, sensor, quantity)`` order."""
    since, until = window(since, until)
    step = parse_every(every) if every is not None else None
    listing = _listing(device_id, sensor, quantity, since, until, step, order)
    descending = order == "desc"
    if step is None:
        start_after = _reading_key(listing, cursor) if cursor is not None else None
        with state.engine.connect() as conn:
            if not device_known(conn, device_id):
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"device {device_id} was never seen")
            rows = list_readings(
                conn,
                device_id,
                limit=limit + 1,
                sensor=sensor,
                quantity=quantity,
                since=since,
                until=until,
                start_after=start_after,
                descending=descending,
            )
        page = rows[:limit]
        last = page[-1] if len(rows) > limit else None
        return ReadingsPage(
            device_id=device_id,
            every_s=None,
            readings=[ReadingOut.model_validate(r) for r in page],
            buckets=[],
            next_cursor=encode_key(listing, _iso(last.ts), last.event_id, last.sensor, last.quantity)
            if last
            else None,
        )
    if since is None or until is None:
        raise invalid("since" if since is None else "until", "every needs both since and until", None)
    buckets = bucket_count(since, until, step)
    if buckets > MAX_BUCKETS:
        raise invalid(
            "every",
            f"{every} from since to until makes {buckets:,} buckets, more than {MAX_BUCKETS:,}: "
            "take a longer every or a shorter window",
            every,
        )
    bucket_after = _bucket_key(listing, cursor, since, until, step) if cursor is not None else None
    with state.engine.connect() as conn:
        if not device_known(conn, device_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"device {device_id} was never seen")
        found = list_buckets(
            conn,
            device_id,
            every=step,
            since=since,
            until=until,
            limit=limit + 1,
            sensor=sensor,
            quantity=quantity,
            start_after=bucket_after,
            descending=descending,
        )
    chunk = found[:limit]
    end = chunk[-1] if len(found) > limit else None
    return ReadingsPage(
        device_id=device_id,
        every_s=step // timedelta(seconds=1),
        readings=[],
        buckets=[BucketOut.model_validate(b) for b in chunk],
        next_cursor=encode_key(listing, _iso(end.start), end.sensor, end.quantity) if end else None,
    )
