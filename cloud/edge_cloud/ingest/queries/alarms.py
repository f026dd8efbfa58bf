"""``alarms``: a device's alarms, filtered and paged on ``(ts, event_id)``, and the open ones.

"Open" is defined here (docs/INGEST.md, "Test results and alarms"): the latest alarm of
each ``(sensor, code)`` is open unless

- its ``data.cleared`` is ``true`` (devices send ``state: "cleared"`` with the alarm's
  ``alarm_id`` when its condition is over; docs/PROTOCOL.md), or
- it is a ``sensor_test_failed`` alarm and the latest run of the same ``(sensor, test)``
  is a later ``pass``: the condition it raised is gone (devices older than the alarm life
  cycle).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from edge_cloud.ingest.queries.fleet import after, aware, since_until
from edge_cloud.ingest.queries.test_results import StoredTestResult
from edge_cloud.ingest.tables import alarms as al

TEST_FAILED = "sensor_test_failed"


@dataclass(frozen=True)
class StoredAlarm:
    event_id: str
    ts: datetime
    sensor: str | None
    code: str
    data: dict[str, Any]


_COLUMNS = (al.c.event_id, al.c.ts, al.c.sensor, al.c.code, al.c.data)


def _row(r: RowMapping) -> StoredAlarm:
    data = r["data"]
    return StoredAlarm(
        event_id=r["event_id"],
        ts=aware(r["ts"]),
        sensor=r["sensor"],
        code=r["code"],
        data=dict(data) if isinstance(data, dict) else {},
    )


def list_alarms(
    conn: Connection,
    device_id: str,
    *,
    limit: int,
    code: str | None = None,
    sensor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    start_after: tuple[datetime, str] | None = None,
    descending: bool = True,
) -> list[StoredAlarm]:
    """Up to ``limit`` alarms in ``(ts, event_id)`` order after ``start_after``."""
    where = [al.c.device_id == device_id, *since_until(al.c.ts, since, until)]
    if code is not None:
        where.append(al.c.code == code)
    if sensor is not None:
        where.append(al.c.sensor == sensor)
    if start_after is not None:
        where.append(after(al.c.ts, al.c.event_id, *start_after, descending=descending))
    order = (al.c.ts.desc(), al.c.event_id.desc()) if descending else (al.c.ts, al.c.event_id)
    rows = conn.execute(sa.select(*_COLUMNS).where(*where).order_by(*order).limit(limit)).mappings()
    return [_row(r) for r in rows]


def latest_per_code(conn: Connection, device_ids: Sequence[str]) -> dict[str, list[StoredAlarm]]:
    """Per device, the latest alarm of each ``(sensor, code)``."""
    if not device_ids:
        return {}
    rank = (
        sa.func.row_number()
        .over(
            partition_by=(al.c.device_id, al.c.sensor, al.c.code),
            order_by=(al.c.ts.desc(), al.c.event_id.desc()),
        )
        .label("rank")
    )
    ranked = sa.select(al.c.device_id, *_COLUMNS, rank).where(al.c.device_id.in_(device_ids)).subquery()
    out: dict[str, list[StoredAlarm]] = defaultdict(list)
    for r in conn.execute(sa.select(ranked).where(ranked.c.rank == 1)).mappings():
        out[r["device_id"]].append(_row(r))
    return {d: sorted(a, key=lambda x: (x.sensor or "", x.code)) for d, a in out.items()}


def open_alarms(latest: Sequence[StoredAlarm], latest_runs: Sequence[StoredTestResult]) -> list[StoredAlarm]:
    """Which of a device's latest alarms per ``(sensor, code)`` are open (see the module's docstring)."""
    runs: Mapping[tuple[str | None, str], StoredTestResult] = {(t.sensor, t.test): t for t in latest_runs}
    out = []
    for alarm in latest:
        if alarm.data.get("cleared") is True:
            continue
        if alarm.code == TEST_FAILED:
            run = runs.get((alarm.sensor, str(alarm.data.get("test"))))
            if run is not None and run.status == "pass" and run.ts > alarm.ts:
                continue
        out.append(alarm)
    return out
