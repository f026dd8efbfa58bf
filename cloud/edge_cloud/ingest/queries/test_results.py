"""``test_results``: a device's test runs, filtered and paged on ``(ts, event_id)``, and the
latest run of each ``(sensor, test)`` (what the fleet summary calls failing)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from edge_cloud.ingest.queries.fleet import after, aware, since_until
from edge_cloud.ingest.tables import test_results as tr

FAILING = ("fail", "error")


@dataclass(frozen=True)
class StoredTestResult:
    event_id: str
    ts: datetime
    sensor: str | None
    test: str
    kind: str
    status: str
    trigger: str | None
    detail: str | None
    data: dict[str, Any]


def _row(r: RowMapping) -> StoredTestResult:
    return StoredTestResult(
        event_id=r["event_id"],
        ts=aware(r["ts"]),
        sensor=r["sensor"],
        test=r["test"],
        kind=r["kind"],
        status=r["status"],
        trigger=r["trigger"],
        detail=r["detail"],
        data=dict(r["data"]) if isinstance(r["data"], dict) else {},
    )


_COLUMNS = (
    tr.c.event_id,
    tr.c.ts,
    tr.c.sensor,
    tr.c.test,
    tr.c.kind,
    tr.c.status,
    tr.c.trigger,
    tr.c.detail,
    tr.c.data,
)


def list_test_results(
    conn: Connection,
    device_id: str,
    *,
    limit: int,
    status: str | None = None,
    sensor: str | None = None,
    test: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    start_after: tuple[datetime, str] | None = None,
    descending: bool = True,
) -> list[StoredTestResult]:
    """Up to ``limit`` runs in ``(ts, event_id)`` order after ``start_after`` (a keyset, no OFFSET)."""
    where = [tr.c.device_id == device_id, *since_until(tr.c.ts, since, until)]
    if status is not None:
        where.append(tr.c.status == status)
    if sensor is not None:
        where.append(tr.c.sensor == sensor)
    if test is not None:
        where.append(tr.c.test == test)
    if start_after is not None:
        where.append(after(tr.c.ts, tr.c.event_id, *start_after, descending=descending))
    order = (tr.c.ts.desc(), tr.c.event_id.desc()) if descending else (tr.c.ts, tr.c.event_id)
    rows = conn.execute(sa.select(*_COLUMNS).where(*where).order_by(*order).limit(limit)).mappings()
    return [_row(r) for r in rows]


def latest_per_test(conn: Connection, device_ids: Sequence[str]) -> dict[str, list[StoredTestResult]]:
    """Per device, the latest run of each ``(sensor, test)``, ordered by sensor and test.

    Reads every run of the devices (test runs are hours apart, not readings' seconds);
    the window function keeps one row per pair in the database."""
    if not device_ids:
        return {}
    rank = (
        sa.func.row_number()
        .over(
            partition_by=(tr.c.device_id, tr.c.sensor, tr.c.test),
            order_by=(tr.c.ts.desc(), tr.c.event_id.desc()),
        )
        .label("rank")
    )
    ranked = sa.select(tr.c.device_id, *_COLUMNS, rank).where(tr.c.device_id.in_(device_ids)).subquery()
    query = sa.select(ranked).where(ranked.c.rank == 1)
    out: dict[str, list[StoredTestResult]] = defaultdict(list)
    for r in conn.execute(query).mappings():
        out[r["device_id"]].append(_row(r))
    # NULL sensors sort first on SQLite and last on PostgreSQL: one order for both.
    return {d: sorted(runs, key=lambda t: (t.sensor or "", t.test)) for d, runs in out.items()}


def sensors_tested(conn: Connection, device_ids: Sequence[str]) -> dict[str, set[str]]:
    """Per device, the sensors it has test results for."""
    out: dict[str, set[str]] = defaultdict(set)
    if device_ids:
        query = (
            sa.select(tr.c.device_id, tr.c.sensor)
            .distinct()
            .where(tr.c.device_id.in_(device_ids), tr.c.sensor.is_not(None))
        )
        for device_id, sensor in conn.execute(query):
            out[device_id].add(sensor)
    return dict(out)
