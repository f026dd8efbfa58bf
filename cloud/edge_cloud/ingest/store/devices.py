"""The ``devices`` rows: seen, online/offline, the pending and evicted counts reported.

:func:`touch` runs first in a transaction and in device-id order: the row lock it takes
is what serialises two ingest processes writing the same device (PostgreSQL), so their
ledger inserts and range merges for that device never interleave, and two transactions
lock their devices in the same order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from edge_cloud.ingest.store.inserts import dialect_insert
from edge_cloud.ingest.store.model import StatusMessage
from edge_cloud.ingest.tables import devices


def touch(conn: Connection, seen: Mapping[str, datetime]) -> None:
    """Create the devices not known yet; move ``last_seen`` forward (never back)."""
    if not seen:
        return
    ins = dialect_insert(conn, devices)
    stmt = ins.on_conflict_do_update(
        index_elements=[devices.c.device_id],
        set_={"last_seen": _later(ins.excluded.last_seen, devices.c.last_seen)},
    )
    conn.execute(stmt, [{"device_id": d, "first_seen": t, "last_seen": t} for d, t in sorted(seen.items())])


def apply_statuses(conn: Connection, statuses: Iterable[StatusMessage]) -> None:
    """Births and wills in arrival order.  ``status_at`` moves only when the state (or the
    boot) changes, so a retained message delivered again says nothing new."""
    for s in statuses:
        ins = dialect_insert(conn, devices).values(
            device_id=s.device_id,
            first_seen=s.received_at,
            last_seen=s.received_at,
            online=s.online,
            status_at=s.ts or s.received_at,
            boot=s.boot,
            epoch=s.epoch,
            pending_events=s.pending,
        )
        changed = sa.or_(
            devices.c.online.is_distinct_from(ins.excluded.online),
            sa.and_(ins.excluded.boot.is_not(None), devices.c.boot.is_distinct_from(ins.excluded.boot)),
        )
        values: dict[str, object] = {
            "online": ins.excluded.online,
            "status_at": sa.case((changed, ins.excluded.status_at), else_=devices.c.status_at),
            "boot": sa.func.coalesce(ins.excluded.boot, devices.c.boot),
            "epoch": sa.func.coalesce(ins.excluded.epoch, devices.c.epoch),
            "pending_events": sa.func.coalesce(ins.excluded.pending_events, devices.c.pending_events),
        }
        if not s.retained:
            values["last_seen"] = _later(ins.excluded.last_seen, devices.c.last_seen)
        conn.execute(ins.on_conflict_do_update(index_elements=[devices.c.device_id], set_=values))


def add_evicted(conn: Connection, evicted: Mapping[str, int]) -> None:
    _add(conn, devices.c.evicted_events, evicted)


def add_dropped(conn: Connection, dropped: Mapping[str, int]) -> None:
    """Events devices report they never committed (no seqs: counts only)."""
    _add(conn, devices.c.dropped_events, dropped)


def _add(conn: Connection, column: sa.Column[int], counts: Mapping[str, int]) -> None:
    rows = [{"d": d, "n": n} for d, n in sorted(counts.items()) if n]
    if rows:
        conn.execute(
            devices.update()
            .where(devices.c.device_id == sa.bindparam("d"))
            .values({column: column + sa.bindparam("n")}),
            rows,
        )


def _later(a: sa.ColumnElement[datetime], b: sa.ColumnElement[datetime]) -> sa.ColumnElement[datetime]:
    return sa.case((a > b, a), else_=b)
