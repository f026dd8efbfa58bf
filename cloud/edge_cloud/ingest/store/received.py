"""``received_ranges``: per device and epoch, the seqs received, as merged ranges.

A transaction reads the stored ranges that touch its new ones (overlap or adjacency),
and replaces them with the merge.  Devices are locked by ``devices.touch`` before this
runs, so two transactions never merge the same device's ranges at once.
"""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from edge_cloud.ingest.store.ranges import SeqRange, covers, merge
from edge_cloud.ingest.tables import received_ranges as rr
from edge_protocol.wire import seq_ranges

_PAIRS_PER_QUERY = 200
"""``(device, epoch)`` spans per SELECT (4 parameters each: SQLite allows 32766)."""


def note(conn: Connection, seqs: Mapping[tuple[str, str], set[int]]) -> None:
    """Merge ``(device_id, epoch) → seqs`` into the stored ranges."""
    new = {key: seq_ranges(s) for key, s in seqs.items() if s}
    if not new:
        return
    stored = _stored_near(conn, new)
    deletes: list[dict[str, object]] = []
    inserts: list[dict[str, object]] = []
    for key in sorted(new):
        have = stored.get(key, [])
        if covers(have, new[key]):
            continue  # duplicates only
        device_id, epoch = key
        deletes += [{"d": device_id, "e": epoch, "f": first} for first, _ in have]
        inserts += [
            {"device_id": device_id, "epoch": epoch, "first_seq": a, "last_seq": b}
            for a, b in merge([*have, *new[key]])
        ]
    if deletes:
        conn.execute(
            rr.delete().where(
                rr.c.device_id == sa.bindparam("d"),
                rr.c.epoch == sa.bindparam("e"),
                rr.c.first_seq == sa.bindparam("f"),
            ),
            deletes,
        )
    if inserts:
        conn.execute(rr.insert(), inserts)


def _stored_near(
    conn: Connection, new: Mapping[tuple[str, str], list[SeqRange]]
) -> dict[tuple[str, str], list[SeqRange]]:
    """The stored ranges overlapping or adjacent to the span of each key's new ranges.

    One query per ``_PAIRS_PER_QUERY`` keys, joined to a VALUES list of the spans: plain
    text, as SQLAlchemy would compile an OR of that many conditions afresh each time.
    """
    keys = sorted(new)
    out: dict[tuple[str, str], list[SeqRange]] = {}
    for i in range(0, len(keys), _PAIRS_PER_QUERY):
        params: dict[str, object] = {}
        values = []
        for n, key in enumerate(keys[i : i + _PAIRS_PER_QUERY]):
            ranges = new[key]
            params |= {
                f"d{n}": key[0],
                f"e{n}": key[1],
                f"lo{n}": ranges[0][0] - 1,
                f"hi{n}": ranges[-1][1] + 1,
            }
            values.append(f"(:d{n}, :e{n}, :lo{n}, :hi{n})")
        query = sa.text(
            "SELECT r.device_id, r.epoch, r.first_seq, r.last_seq FROM received_ranges r "
            f"JOIN (VALUES {', '.join(values)}) AS w ON r.device_id = w.column1 AND r.epoch = w.column2 "
            "AND r.last_seq >= w.column3 AND r.first_seq <= w.column4"
        )
        for d, e, first, last in conn.execute(query, params):
            out.setdefault((d, e), []).append((int(first), int(last)))
    return {k: sorted(v) for k, v in out.items()}
