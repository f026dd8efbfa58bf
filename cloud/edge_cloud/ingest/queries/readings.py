"""``readings``: a device's values in time order, paged by keyset, or downsampled to buckets.

A page is ordered by ``(ts, event_id, sensor, quantity)`` — unique per device, since an
event is one sensor's and holds each quantity once — so several series (a sensor's
quantities, or all of a device's) merge into one ordered listing, ties on ``ts`` across
series and events included.

A series is a row of ``series`` (an integer per ``(device_id, sensor, quantity)``), and
``ix_readings_series`` is ``(series_id, ts)``: it serves one series in time order (ties on
``ts`` sorted by ``event_id`` as they come, an incremental sort), not several.  So a
listing of several series is a ``UNION ALL`` of one ordered, limited query per series of
the device (an index range scan each; one that has no rows in the window costs one
probe), merged by the database instead of sorting every row of the window.  The page's
``epoch`` and ``seq`` come from the ledger (``event_ids``), one key probe per row.

Buckets (``every``) are computed in SQL — count, min, mean and max per ``(sensor,
quantity, bucket)`` — so a month's chart moves a few hundred rows, not millions.  Buckets
are aligned on 1970-01-01T00:00Z (``k·every`` from it, as InfluxDB's and TimescaleDB's
are): ``1h`` buckets start on the hour, ``1d`` ones at midnight UTC, whatever ``since`` is;
the first and last are cut short by the window.  PostgreSQL's ``date_bin``; on SQLite
(times stored as ``YYYY-MM-DD HH:MM:SS.ffffff`` text) the bucket number from integer
microseconds, exact where floating-point days would round.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from edge_cloud.ingest.queries.fleet import aware, since_until
from edge_cloud.ingest.tables import SENSOR, TS
from edge_cloud.ingest.tables import event_ids as ev
from edge_cloud.ingest.tables import readings as rd
from edge_cloud.ingest.tables import series as sr

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

ReadingKey = tuple[datetime, str, str, str]
"""``(ts, event_id, sensor, quantity)``: where a page of readings ended."""
BucketKey = tuple[datetime, str, str]
"""``(bucket start, sensor, quantity)``: where a page of buckets ended."""


@dataclass(frozen=True)
class StoredReading:
    ts: datetime
    sensor: str
    quantity: str
    value: float
    event_id: str
    epoch: str
    seq: int
    clock_synced: bool
    cal: int | None


@dataclass(frozen=True)
class Bucket:
    start: datetime
    sensor: str
    quantity: str
    count: int
    min: float
    mean: float
    max: float


def _reading(r: RowMapping) -> StoredReading:
    return StoredReading(
        ts=aware(r["ts"]),
        sensor=r["sensor"],
        quantity=r["quantity"],
        value=float(r["value"]),
        event_id=r["event_id"],
        epoch=r["epoch"],
        seq=int(r["seq"]),
        clock_synced=bool(r["clock_synced"]),
        cal=r["cal"],
    )


def beyond(
    columns: Sequence[sa.ColumnElement[Any]], values: Sequence[object], *, descending: bool
) -> sa.ColumnElement[bool]:
    """``columns`` strictly after ``values`` in lexicographic order (before, descending).

    An OR of prefixes rather than a row-value comparison, so each value is bound with its
    column's type (SQLite compares times as text: the bound value must be the same text)."""
    terms = []
    for i, (column, value) in enumerate(zip(columns, values, strict=True)):
        equal = [c == v for c, v in zip(columns[:i], values[:i], strict=True)]
        terms.append(sa.and_(*equal, column < value if descending else column > value))
    return sa.or_(*terms)


def series(
    conn: Connection, device_id: str, *, sensor: str | None = None, quantity: str | None = None
) -> list[tuple[int, str, str]]:
    """The device's series ``(series_id, sensor, quantity)``, of ``sensor``/``quantity`` if given."""
    query = sa.select(sr.c.series_id, sr.c.sensor, sr.c.quantity).where(sr.c.device_id == device_id)
    if sensor is not None:
        query = query.where(sr.c.sensor == sensor)
    if quantity is not None:
        query = query.where(sr.c.quantity == quantity)
    return [(int(i), s, q) for i, s, q in conn.execute(query.order_by(sr.c.sensor, sr.c.quantity))]


def list_readings(
    conn: Connection,
    device_id: str,
    *,
    limit: int,
    sensor: str | None = None,
    quantity: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    start_after: ReadingKey | None = None,
    descending: bool = False,
) -> list[StoredReading]:
    """Up to ``limit`` readings in ``(ts, event_id, sensor, quantity)`` order after
    ``start_after`` (a keyset, no OFFSET); ``since`` inclusive, ``until`` exclusive, UTC."""
    found = series(conn, device_id, sensor=sensor, quantity=quantity)
    if not found:
        return []
    window = since_until(rd.c.ts, since, until)
    if start_after is not None:
        # Redundant with the keyset condition, but it is what lets the index scan start at
        # the cursor's time instead of at ``since`` (the planner does not derive it).
        window.append(rd.c.ts <= start_after[0] if descending else rd.c.ts >= start_after[0])
    branch_key = (rd.c.ts, rd.c.event_id)
    branch_order = [c.desc() for c in branch_key] if descending else list(branch_key)
    branches = []
    for series_id, s, q in found:
        names = (sa.literal(s, SENSOR).label("sensor"), sa.literal(q, SENSOR).label("quantity"))
        where = [rd.c.series_id == series_id, *window]
        if start_after is not None:
            where.append(beyond((*branch_key, *names), start_after, descending=descending))
        branches.append(
            sa.select(rd.c.ts, *names, rd.c.value, rd.c.event_id, rd.c.clock_synced, rd.c.cal)
            .where(*where)
            .order_by(*branch_order)
            .limit(limit)
        )
    if len(branches) == 1:
        page = branches[0].subquery("page")
    else:
        # One ordered, limited branch per series (an index range scan each), merged:
        # wrapped as subqueries, as SQLite takes no ORDER BY/LIMIT on a bare member of a
        # compound select.
        merged = sa.union_all(*(sa.select(b.subquery()) for b in branches)).subquery()
        merged_key = (merged.c.ts, merged.c.event_id, merged.c.sensor, merged.c.quantity)
        page = (
            sa.select(merged)
            .order_by(*([c.desc() for c in merged_key] if descending else merged_key))
            .limit(limit)
            .subquery("page")
        )
    # The page's epoch and seq from the ledger: one probe of its key per row.
    key = (page.c.ts, page.c.event_id, page.c.sensor, page.c.quantity)
    query = (
        sa.select(page, ev.c.epoch, ev.c.seq)
        .join(ev, sa.and_(ev.c.device_id == device_id, ev.c.id == page.c.event_id))
        .order_by(*([c.desc() for c in key] if descending else key))
    )
    return [_reading(r) for r in conn.execute(query).mappings()]


def bucket_origin(since: datetime, every: timedelta) -> datetime:
    """The start of the bucket holding ``since``: the last ``k·every`` from 1970-01-01 UTC
    at or before it (``since`` itself in the first ``every`` after year 1)."""
    try:
        return since - (since - _EPOCH) % every
    except OverflowError:
        return since


def bucket_count(since: datetime, until: datetime, every: timedelta) -> int:
    """How many buckets ``[since, until)`` touches (the first and last may be partial)."""
    return -((bucket_origin(since, every) - until) // every)


def list_buckets(
    conn: Connection,
    device_id: str,
    *,
    every: timedelta,
    since: datetime,
    until: datetime,
    limit: int,
    sensor: str | None = None,
    quantity: str | None = None,
    start_after: BucketKey | None = None,
    descending: bool = False,
) -> list[Bucket]:
    """Up to ``limit`` buckets of ``every`` (a whole number of seconds, aligned by
    :func:`bucket_origin`) of the rows in ``[since, until)``, ordered by ``(start, sensor,
    quantity)`` after ``start_after``; only non-empty ones."""
    if every.total_seconds() < 1 or every % timedelta(seconds=1):
        raise ValueError(f"every must be a whole number of seconds, not {every}")
    lo, hi = since, until
    where = [sr.c.device_id == device_id]
    if sensor is not None:
        where.append(sr.c.sensor == sensor)
    if quantity is not None:
        where.append(sr.c.quantity == quantity)
    if start_after is not None:
        # The page goes on in the cursor's bucket (its later series) and the buckets
        # beyond it: narrow the rows read to those, in terms of ts (what the index holds).
        start, s, q = start_after
        end = start + every if until - start > every else until  # never past datetime.max
        if descending:
            hi = min(hi, end)
            where.append(
                sa.or_(rd.c.ts < start, beyond((sr.c.sensor, sr.c.quantity), (s, q), descending=True))
            )
        else:
            lo = max(lo, start)
            where.append(
                sa.or_(rd.c.ts >= end, beyond((sr.c.sensor, sr.c.quantity), (s, q), descending=False))
            )
    where += since_until(rd.c.ts, lo, hi)
    postgres = conn.dialect.name == "postgresql"
    origin = bucket_origin(since, every)
    bucket = _pg_bucket(every, origin) if postgres else _sqlite_bucket(every, origin)
    bucket = bucket.label("bucket")
    grouped = (
        sa.select(
            sr.c.sensor,
            sr.c.quantity,
            bucket,
            sa.func.count().label("n"),
            sa.func.min(rd.c.value).label("lo"),
            sa.func.avg(rd.c.value).label("mean"),
            sa.func.max(rd.c.value).label("hi"),
        )
        .select_from(sr.join(rd, rd.c.series_id == sr.c.series_id))
        .where(*where)
        .group_by(sr.c.sensor, sr.c.quantity, bucket)
        .subquery()
    )
    key = (grouped.c.bucket, grouped.c.sensor, grouped.c.quantity)
    query = sa.select(grouped).order_by(*([c.desc() for c in key] if descending else key)).limit(limit)
    out = []
    for r in conn.execute(query).mappings():
        start = aware(r["bucket"]) if postgres else origin + every * int(r["bucket"])
        out.append(
            Bucket(
                start=start,
                sensor=r["sensor"],
                quantity=r["quantity"],
                count=int(r["n"]),
                min=float(r["lo"]),
                mean=float(r["mean"]),
                max=float(r["hi"]),
            )
        )
    return out


def _pg_bucket(every: timedelta, origin: datetime) -> sa.ColumnElement[Any]:
    """The bucket's start: ``date_bin`` from ``origin`` (``ts >= origin`` here)."""
    return sa.func.date_bin(
        sa.bindparam("every", every, type_=sa.Interval),
        rd.c.ts,
        sa.bindparam("origin", origin, type_=TS),
        type_=TS,
    )


def _sqlite_bucket(every: timedelta, origin: datetime) -> sa.ColumnElement[Any]:
    """The bucket's number from ``origin``, in integer microseconds: whole seconds from
    ``strftime('%s')`` of the stored text cut before its fraction (SQLite rounds a time to
    milliseconds: ``:59.9999`` would count as the next second), plus its six fraction
    digits.  ``ts >= origin`` here, so integer division is the floor."""
    seconds = sa.cast(sa.func.strftime("%s", sa.func.substr(rd.c.ts, 1, 19)), sa.BigInteger)
    micros = sa.cast(sa.func.substr(rd.c.ts, 21, 6), sa.BigInteger)
    origin_s, origin_us = divmod((origin - _EPOCH) // _MICROSECOND, 1_000_000)
    offset = (seconds - origin_s) * 1_000_000 + micros - origin_us
    return offset // (every // _MICROSECOND)
