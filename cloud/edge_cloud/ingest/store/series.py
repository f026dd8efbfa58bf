"""``series``: the integer a reading row carries instead of ``(device_id, sensor, quantity)``.

A process keeps the ids it has seen committed in a dict (:class:`SeriesIds`); a series not
in it is inserted-or-ignored (``ON CONFLICT DO NOTHING``, in key order) and its id read
back, in the transaction that stores its first readings.  Two ingest processes creating
the same series at once: the second insert waits for the first transaction, then skips
the row if it committed (and inserts it if it rolled back), and the read that follows
sees the committed id — so both write the same id.  (Both have also locked the device's
row first, ``devices.touch``, so they do not even overlap.)  The ids read in a
transaction join the dict only once it has committed: a rolled-back insert's id must
never be used again.  Series are never deleted, so a remembered id stays true.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from edge_cloud.ingest.store.inserts import dialect_insert
from edge_cloud.ingest.store.rows import SeriesKey
from edge_cloud.ingest.tables import series

_DEVICES_PER_QUERY = 500
"""Devices per read-back (SQLite allows 32766 parameters)."""


class SeriesIds:
    """The series ids this process has seen committed, and the resolution of new ones."""

    def __init__(self) -> None:
        self._known: dict[SeriesKey, int] = {}

    def resolve(
        self, conn: Connection, keys: Iterable[SeriesKey]
    ) -> tuple[Mapping[SeriesKey, int], dict[SeriesKey, int]]:
        """The id of every key (the unknown ones inserted in ``conn``'s transaction), and
        the ids read now: pass those to :meth:`remember` after the commit."""
        known = self._known
        missing = {k for k in keys if k not in known}
        if not missing:
            return known, {}
        ordered = sorted(missing)
        conn.execute(
            dialect_insert(conn, series).on_conflict_do_nothing(
                index_elements=[series.c.device_id, series.c.sensor, series.c.quantity]
            ),
            [{"device_id": d, "sensor": s, "quantity": q} for d, s, q in ordered],
        )
        fresh = read(conn, sorted({d for d, _, _ in ordered}))
        # One dict, not a ChainMap: it is looked up once per reading row written.
        return known | fresh, fresh

    def remember(self, committed: Mapping[SeriesKey, int]) -> None:
        self._known.update(committed)


def read(conn: Connection, device_ids: Iterable[str]) -> dict[SeriesKey, int]:
    """Every series of ``device_ids``, by key."""
    ids = list(device_ids)
    out: dict[SeriesKey, int] = {}
    query = sa.select(series.c.series_id, series.c.device_id, series.c.sensor, series.c.quantity).where(
        series.c.device_id.in_(sa.bindparam("ids", expanding=True))
    )
    for i in range(0, len(ids), _DEVICES_PER_QUERY):
        for sid, d, s, q in conn.execute(query, {"ids": ids[i : i + _DEVICES_PER_QUERY]}):
            out[(d, s, q)] = int(sid)
    return out
