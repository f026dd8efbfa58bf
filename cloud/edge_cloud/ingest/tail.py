"""``edge-ingest tail DEVICE``: a device's readings as they are stored, like ``journalctl -f``.

It reads the database (the one in the configuration), not the broker: what it shows is
what was committed.  Readings are followed in the order they were stored (the ledger's
``received_at``), not by their own time: a backlog draining after an outage shows up as
it arrives, with its old timestamps.  Each poll looks ``OVERLAP_S`` back (transactions
commit in a different order than they start) and skips what it has printed.

One line per quantity, in a quantity's name order within an event, under 80 columns
for usual names (a longer name widens its line, it is never cut), the same plain text
on a terminal and in a pipe: the event time (``~`` after it: the device's clock was not
synchronised), sensor, quantity, value (10 significant digits), and the calibration id
when one was applied::

    2026-11-25T13:19:03.123Z  climate    pressure_pa              101211.414  cal 12
    2026-11-25T13:19:03.123Z  climate    temperature_c                 19.58
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from edge_cloud.ingest.tables import event_ids, readings, series

OVERLAP_S = 10.0
_MIN = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Line:
    received_at: datetime
    ts: datetime
    sensor: str
    quantity: str
    value: float
    event_id: str
    cal: int | None
    clock_synced: bool

    @property
    def key(self) -> tuple[datetime, datetime, str, str]:
        """The order lines are stored and shown in."""
        return (self.received_at, _utc(self.ts), self.event_id, self.quantity)

    def render(self) -> str:
        ts = _utc(self.ts).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        ts += " " if self.clock_synced else "~"
        text = f"{ts} {self.sensor:<10} {self.quantity:<20} {self.value:>14.10g}"
        return text if self.cal is None else f"{text}  cal {self.cal}"


def _utc(t: datetime) -> datetime:
    """SQLite gives naive times (stored as UTC)."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _query(device_id: str, sensor: str | None, quantity: str | None) -> sa.Select[Any]:
    q = (
        sa.select(
            event_ids.c.received_at,
            readings.c.ts,
            series.c.sensor,
            series.c.quantity,
            readings.c.value,
            readings.c.event_id,
            readings.c.cal,
            readings.c.clock_synced,
        )
        .join(series, series.c.series_id == readings.c.series_id)
        .join(
            event_ids,
            sa.and_(event_ids.c.device_id == series.c.device_id, event_ids.c.id == readings.c.event_id),
        )
        .where(series.c.device_id == device_id)
    )
    if sensor is not None:
        q = q.where(series.c.sensor == sensor)
    if quantity is not None:
        q = q.where(series.c.quantity == quantity)
    return q


def _line(row: sa.Row[Any]) -> Line:
    return Line(
        _utc(row.received_at),
        row.ts,
        str(row.sensor),
        str(row.quantity),
        float(row.value),
        str(row.event_id),
        None if row.cal is None else int(row.cal),
        bool(row.clock_synced),
    )


def last(
    engine: Engine, device_id: str, n: int, *, sensor: str | None = None, quantity: str | None = None
) -> list[Line]:
    """The ``n`` readings stored last, oldest first."""
    q = _query(device_id, sensor, quantity).order_by(
        event_ids.c.received_at.desc(),
        readings.c.ts.desc(),
        readings.c.event_id.desc(),
        series.c.quantity.desc(),
    )
    with engine.connect() as conn:
        rows = conn.execute(q.limit(n)).all()
    return [_line(r) for r in reversed(rows)]


def since(
    engine: Engine, device_id: str, after: datetime, *, sensor: str | None = None, quantity: str | None = None
) -> list[Line]:
    """Readings stored at or after ``after``, in the order stored."""
    q = (
        _query(device_id, sensor, quantity)
        .where(event_ids.c.received_at >= after)
        .order_by(event_ids.c.received_at, readings.c.ts, readings.c.event_id, series.c.quantity)
    )
    with engine.connect() as conn:
        return [_line(r) for r in conn.execute(q)]


def follow(
    engine: Engine,
    device_id: str,
    *,
    backlog: int = 10,
    interval: float = 1.0,
    sensor: str | None = None,
    quantity: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Iterator[list[Line]]:
    """The last ``backlog`` readings, then every poll's new ones (an empty list when none)."""
    overlap = timedelta(seconds=OVERLAP_S)
    first = last(engine, device_id, backlog, sensor=sensor, quantity=quantity) if backlog else []
    # Everything up to what was shown (or stored before we started) counts as shown.
    floor = first[-1].key if first else (now(), _MIN, "", "")
    cursor = floor[0]
    seen: dict[tuple[str, str], datetime] = {}
    yield first
    while True:
        sleep(interval)
        fresh = []
        for line in since(engine, device_id, cursor - overlap, sensor=sensor, quantity=quantity):
            key = (line.event_id, line.quantity)
            if line.key <= floor or key in seen:
                continue
            seen[key] = line.received_at
            fresh.append(line)
            cursor = max(cursor, line.received_at)
        # What the next poll can return again is what it must still recognise.
        seen = {k: t for k, t in seen.items() if t >= cursor - overlap}
        yield fresh


def write_lines(lines: list[Line], out: TextIO) -> None:
    for line in lines:
        out.write(line.render() + "\n")
    out.flush()
