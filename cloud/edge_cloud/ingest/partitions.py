"""PostgreSQL: ``readings`` partitions by event time, made ahead of time and dropped for retention.

The migration makes ``readings`` a range-partitioned table with a default partition.
:func:`maintain` (``edge-ingest db upgrade``, and ``serve`` at start and hourly) adds one
partition per ``[database] partition_interval`` (day, ISO week starting Monday, or
month; UTC) from the previous period to ``AHEAD`` periods ahead, and drops the
partitions that end more than ``[database] retention`` ago.

No reading is lost to a time no partition covers: it lands in ``readings_default`` (an
unsynced clock in 1970, a clock years ahead).  When a partition is made for a range the
default partition holds rows of, they are moved into it in the same transaction.
Retention never touches the default partition: what is there had a clock problem, and
is left for an operator to look at.  An existing partition is never overlapped: after a
change of interval, a new partition is clipped to what the old ones leave uncovered.
On SQLite there are no partitions and this does nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

Interval = Literal["day", "week", "month"]
AHEAD = 2
"""Periods made ahead of the current one (so a clock a little fast is covered too)."""
DEFAULT = "readings_default"
_BOUND = re.compile(r"FROM \((.+?)\) TO \((.+?)\)")
_MIN = datetime.min.replace(tzinfo=UTC)
_MAX = datetime.max.replace(tzinfo=UTC)

Range = tuple[datetime, datetime]


@dataclass(frozen=True)
class Partition:
    name: str
    lo: datetime
    hi: datetime


@dataclass
class Maintenance:
    created: list[str] = field(default_factory=list)
    moved: int = 0
    """Rows moved from the default partition into the partitions made."""
    dropped: list[str] = field(default_factory=list)


def period_start(t: datetime, interval: Interval) -> datetime:
    day = t.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == "day":
        return day
    if interval == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def next_start(start: datetime, interval: Interval) -> datetime:
    if interval == "day":
        return start + timedelta(days=1)
    if interval == "week":
        return start + timedelta(days=7)
    return (start + timedelta(days=32)).replace(day=1)


def wanted(now: datetime, interval: Interval) -> list[Range]:
    """The previous period, the current one and ``AHEAD`` more."""
    start = period_start(now, interval)
    previous = period_start(start - timedelta(days=1), interval)
    out = []
    lo = previous
    for _ in range(AHEAD + 2):
        hi = next_start(lo, interval)
        out.append((lo, hi))
        lo = hi
    return out


def uncovered(existing: Sequence[Range], want: Range) -> list[Range]:
    """The pieces of ``want`` no existing range covers (pure)."""
    pieces = [want]
    for lo, hi in sorted(existing):
        nxt = []
        for a, b in pieces:
            if hi <= a or b <= lo:
                nxt.append((a, b))
                continue
            if a < lo:
                nxt.append((a, lo))
            if hi < b:
                nxt.append((hi, b))
        pieces = nxt
    return pieces


def maintain(
    engine: Engine, *, interval: Interval, retention_s: float | None, now: datetime | None = None
) -> Maintenance:
    """Make the partitions due and drop the expired ones (nothing on SQLite)."""
    result = Maintenance()
    if engine.dialect.name != "postgresql":
        return result
    now = now or datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(sa.text("SET LOCAL TIME ZONE 'UTC'"))
        existing = [(p.lo, p.hi) for p in partitions(conn)]
        todo = [piece for want in wanted(now, interval) for piece in uncovered(existing, want)]
        if todo:
            # Nothing may go into the default partition while its rows move out of it.
            conn.execute(sa.text(f"LOCK TABLE {DEFAULT} IN ACCESS EXCLUSIVE MODE"))
        for lo, hi in todo:
            name, moved = _create(conn, lo, hi)
            result.created.append(name)
            result.moved += moved
    if retention_s is not None:
        cutoff = now - timedelta(seconds=retention_s)
        with engine.begin() as conn:
            for p in partitions(conn):
                if p.hi <= cutoff:
                    conn.execute(sa.text(f'DROP TABLE "{p.name}"'))
                    result.dropped.append(p.name)
    if result.created or result.dropped:
        log.info(
            "readings partitions: created %s, dropped %s, %d rows moved out of the default partition",
            result.created or "none",
            result.dropped or "none",
            result.moved,
        )
    return result


def partitions(conn: Connection) -> list[Partition]:
    """The range partitions of ``readings`` (not the default one), by start."""
    rows = conn.execute(
        sa.text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'readings'::regclass"
        )
    )
    out = []
    for name, bound in rows:
        match = _BOUND.search(bound or "")
        if match:
            out.append(Partition(name, _bound(match.group(1)), _bound(match.group(2))))
    return sorted(out, key=lambda p: p.lo)


def _bound(text: str) -> datetime:
    if text == "MINVALUE":
        return _MIN
    if text == "MAXVALUE":
        return _MAX
    return datetime.fromisoformat(text.strip("'")).astimezone(UTC)


def _create(conn: Connection, lo: datetime, hi: datetime) -> tuple[str, int]:
    name = f"readings_p{lo:%Y%m%d}"
    bounds = {"lo": lo, "hi": hi}
    conn.execute(sa.text(f'CREATE TABLE "{name}" (LIKE readings INCLUDING DEFAULTS INCLUDING CONSTRAINTS)'))
    moved = conn.execute(
        sa.text(
            f"WITH moved AS (DELETE FROM {DEFAULT} WHERE ts >= :lo AND ts < :hi RETURNING *) "
            f'INSERT INTO "{name}" SELECT * FROM moved'
        ),
        bounds,
    ).rowcount
    conn.execute(
        sa.text(
            f"ALTER TABLE readings ATTACH PARTITION \"{name}\" FOR VALUES FROM ('{lo.isoformat()}') "
            f"TO ('{hi.isoformat()}')"
        )
    )
    return name, int(moved or 0)
