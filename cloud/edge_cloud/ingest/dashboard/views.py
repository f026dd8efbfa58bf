"""What each dashboard page shows, read with the API's own queries (no SQL of its own):
plain dataclasses the templates render."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy.engine import Connection

from edge_cloud.ingest.queries.alarms import StoredAlarm, latest_per_code, list_alarms, open_alarms
from edge_cloud.ingest.queries.devices import DeviceSummary, get_device, list_devices
from edge_cloud.ingest.queries.gaps import EpochGaps, device_gaps
from edge_cloud.ingest.queries.readings import bucket_count, list_buckets, list_readings, series
from edge_cloud.ingest.queries.test_results import StoredTestResult, latest_per_test, list_test_results
from edge_protocol.units import symbol_of

Span = Literal["1h", "1d", "30d"]
SPANS: dict[str, tuple[timedelta, timedelta]] = {
    # (window, bucket): 120-360 points a chart at most, whatever the span.
    "1h": (timedelta(hours=1), timedelta(seconds=10)),
    "1d": (timedelta(days=1), timedelta(minutes=10)),
    "30d": (timedelta(days=30), timedelta(hours=6)),
}
FLEET_PAGE = 1000
RECENT = 50


@dataclass(frozen=True)
class FleetRow:
    device: DeviceSummary
    clock: str
    """``synced``/``unsynced`` from its latest reading; ``-`` without readings."""


@dataclass(frozen=True)
class Latest:
    sensor: str
    quantity: str
    value: float
    unit: str
    ts: datetime
    clock_synced: bool
    cal: int | None


@dataclass(frozen=True)
class AlarmRow:
    """One alarm: every event of one ``alarm_id`` (raised, reminders, cleared) is one row."""

    device_id: str
    alarm: StoredAlarm
    """Its newest event (what it is now)."""
    open: bool
    raised_at: datetime
    """When it was raised (its oldest event shown)."""


@dataclass(frozen=True)
class DeviceView:
    device: DeviceSummary
    latest: list[Latest]
    tests: list[StoredTestResult]
    test_names: list[str]
    alarms: list[AlarmRow]
    gaps: list[EpochGaps]


@dataclass(frozen=True)
class Series:
    """One chart's points: bucket starts (Unix seconds) and their min, mean and max."""

    since: float
    until: float
    x: list[float]
    min: list[float]
    mean: list[float]
    max: list[float]


def _clock(conn: Connection, device_id: str) -> str:
    latest = list_readings(conn, device_id, limit=1, descending=True)
    if not latest:
        return "-"
    return "synced" if latest[0].clock_synced else "unsynced"


def fleet(conn: Connection) -> list[FleetRow]:
    devices, _more = list_devices(conn, limit=FLEET_PAGE)
    return [FleetRow(d, _clock(conn, d.device_id)) for d in devices]


def _alarm_rows(
    device_id: str, alarms: list[StoredAlarm], latest: list[StoredAlarm], runs: list[StoredTestResult]
) -> list[AlarmRow]:
    still_open = {a.event_id for a in open_alarms(latest, runs)}
    # Newest first: the first event seen of an alarm is its newest.  Events of devices older
    # than the alarm life cycle carry no alarm_id: each is an alarm of its own.
    newest: dict[str, StoredAlarm] = {}
    oldest: dict[str, datetime] = {}
    for a in sorted(alarms, key=lambda a: (a.ts, a.event_id), reverse=True):
        key = str(a.data.get("alarm_id") or a.event_id)
        newest.setdefault(key, a)
        oldest[key] = a.ts
    return [AlarmRow(device_id, a, a.event_id in still_open, oldest[key]) for key, a in newest.items()]


def device(conn: Connection, device_id: str) -> DeviceView | None:
    summary = get_device(conn, device_id)
    if summary is None:
        return None
    latest = []
    for _series_id, sensor, quantity in series(conn, device_id):
        found = list_readings(conn, device_id, limit=1, sensor=sensor, quantity=quantity, descending=True)
        for r in found:
            latest.append(Latest(sensor, quantity, r.value, symbol_of(quantity), r.ts, r.clock_synced, r.cal))
    runs = latest_per_test(conn, [device_id]).get(device_id, [])
    alarms = list_alarms(conn, device_id, limit=RECENT)
    return DeviceView(
        device=summary,
        latest=latest,
        tests=list_test_results(conn, device_id, limit=RECENT),
        test_names=sorted({t.test for t in runs}),
        alarms=_alarm_rows(device_id, alarms, latest_per_code(conn, [device_id]).get(device_id, []), runs),
        gaps=device_gaps(conn, device_id),
    )


def fleet_alarms(conn: Connection) -> list[AlarmRow]:
    """The latest alarms of every device, open first, newest first."""
    rows: list[AlarmRow] = []
    devices, _more = list_devices(conn, limit=FLEET_PAGE)
    ids = [d.device_id for d in devices]
    latest = latest_per_code(conn, ids)
    runs = latest_per_test(conn, ids)
    for device_id in ids:
        alarms = list_alarms(conn, device_id, limit=RECENT)
        rows += _alarm_rows(device_id, alarms, latest.get(device_id, []), runs.get(device_id, []))
    rows.sort(key=lambda r: r.alarm.ts, reverse=True)
    rows.sort(key=lambda r: not r.open)  # stable: open first, each part newest first
    return rows


def chart(
    conn: Connection, device_id: str, sensor: str, quantity: str, span: Span, now: datetime | None = None
) -> Series:
    """The API's downsampling (``list_buckets``) over the span ending now."""
    window, every = SPANS[span]
    until = (now or datetime.now(UTC)) + every
    since = until - window
    buckets = list_buckets(
        conn,
        device_id,
        every=every,
        since=since,
        until=until,
        limit=bucket_count(since, until, every),
        sensor=sensor,
        quantity=quantity,
    )
    return Series(
        since=since.timestamp(),
        until=until.timestamp(),
        x=[b.start.timestamp() for b in buckets],
        min=[b.min for b in buckets],
        mean=[b.mean for b in buckets],
        max=[b.max for b in buckets],
    )
