"""The fleet: each device's row (seen, online, reported backlog and evictions) with what
it measures, its open alarms and its failing tests; paged on ``device_id``.

Sensors come from ``series`` (those with readings left: one index probe each, however
many readings there are), and from ``test_results``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from edge_cloud.ingest.queries.alarms import StoredAlarm, latest_per_code, open_alarms
from edge_cloud.ingest.queries.fleet import aware
from edge_cloud.ingest.queries.test_results import FAILING, StoredTestResult, latest_per_test, sensors_tested
from edge_cloud.ingest.tables import devices as dv


@dataclass(frozen=True)
class DeviceSummary:
    device_id: str
    first_seen: datetime
    last_seen: datetime
    online: bool | None
    status_at: datetime | None
    boot: str | None
    epoch: str | None
    pending_events: int | None
    evicted_events: int
    dropped_events: int
    sensors: list[str] = field(default_factory=list)
    open_alarms: list[StoredAlarm] = field(default_factory=list)
    failing_tests: list[StoredTestResult] = field(default_factory=list)


# A series counts while it has a reading left (retention drops old partitions): one
# index probe per series.
_SENSORS_READ = sa.text(
    """
    SELECT DISTINCT s.device_id, s.sensor FROM series s
    WHERE s.device_id IN :ids AND EXISTS (SELECT 1 FROM readings r WHERE r.series_id = s.series_id)
    """
).bindparams(sa.bindparam("ids", expanding=True))


def sensors_read(conn: Connection, device_ids: Sequence[str]) -> dict[str, set[str]]:
    """Per device, the sensors it has readings of."""
    out: dict[str, set[str]] = defaultdict(set)
    if device_ids:
        for device_id, sensor in conn.execute(_SENSORS_READ, {"ids": list(device_ids)}):
            out[device_id].add(sensor)
    return dict(out)


def _summaries(conn: Connection, rows: Sequence[Row[tuple[object, ...]]]) -> list[DeviceSummary]:
    ids = [r.device_id for r in rows]
    read = sensors_read(conn, ids)
    tested = sensors_tested(conn, ids)
    runs = latest_per_test(conn, ids)
    alarms = latest_per_code(conn, ids)
    out = []
    for r in rows:
        latest_runs = runs.get(r.device_id, [])
        out.append(
            DeviceSummary(
                device_id=r.device_id,
                first_seen=aware(r.first_seen),
                last_seen=aware(r.last_seen),
                online=r.online,
                status_at=aware(r.status_at) if r.status_at is not None else None,
                boot=r.boot,
                epoch=r.epoch,
                pending_events=r.pending_events,
                evicted_events=r.evicted_events,
                dropped_events=r.dropped_events,
                sensors=sorted(read.get(r.device_id, set()) | tested.get(r.device_id, set())),
                open_alarms=open_alarms(alarms.get(r.device_id, []), latest_runs),
                failing_tests=[t for t in latest_runs if t.status in FAILING],
            )
        )
    return out


def list_devices(
    conn: Connection, *, limit: int, after_id: str | None = None
) -> tuple[list[DeviceSummary], bool]:
    """Up to ``limit`` devices by ``device_id`` after ``after_id``, and whether more follow."""
    query = sa.select(dv).order_by(dv.c.device_id).limit(limit + 1)
    if after_id is not None:
        query = query.where(dv.c.device_id > after_id)
    rows = list(conn.execute(query))
    return _summaries(conn, rows[:limit]), len(rows) > limit


def get_device(conn: Connection, device_id: str) -> DeviceSummary | None:
    """The device's summary, or None if the ingest never heard of it."""
    rows = list(conn.execute(sa.select(dv).where(dv.c.device_id == device_id)))
    return _summaries(conn, rows)[0] if rows else None


def device_known(conn: Connection, device_id: str) -> bool:
    query = sa.select(dv.c.device_id).where(dv.c.device_id == device_id)
    return conn.execute(query).first() is not None
