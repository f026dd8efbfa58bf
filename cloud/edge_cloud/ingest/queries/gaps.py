"""Which seqs of a device's epochs are missing, and which of those it said it evicted.

Per epoch the seqs run from 1 (PROTOCOL.md: a new outbox starts again at 1) to the
highest one known: received (``received_ranges``) or reported evicted (``gaps``).
Everything below that not received is missing: ``evicted`` where a gap event covers it,
``exported`` where a gap event with that reason does (written to a file by ``buffer export
--mark-exported``: on its way through an import, not lost), ``unknown`` otherwise (on its
way, or lost).  Nothing past the highest known seq is
called missing: a birth's ``pending`` counts events but does not say their seqs.

The work is proportional to the stored ranges (merged: one per run of consecutive seqs,
so a device whose events arrive whole has one per epoch), never to the seqs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from edge_cloud.ingest.store.ranges import SeqRange, merge
from edge_cloud.ingest.store.rows import EXPORTED
from edge_cloud.ingest.tables import gaps as gp
from edge_cloud.ingest.tables import received_ranges as rr

MissingState = Literal["evicted", "exported", "unknown"]


@dataclass(frozen=True)
class MissingRange:
    epoch: str
    first_seq: int
    last_seq: int
    state: MissingState

    @property
    def count(self) -> int:
        return self.last_seq - self.first_seq + 1


@dataclass(frozen=True)
class EpochGaps:
    epoch: str
    received: int
    """Seqs received (stored, or refused one by one)."""
    last_known_seq: int
    """The highest seq received or reported evicted."""
    missing: list[MissingRange]

    def total(self, state: MissingState) -> int:
        return sum(m.count for m in self.missing if m.state == state)


def missing_ranges(
    epoch: str,
    received: Sequence[SeqRange],
    evicted: Sequence[SeqRange],
    exported: Sequence[SeqRange] = (),
) -> list[MissingRange]:
    """The holes in ``received`` from seq 1 to the highest known seq, each split into the
    parts ``exported`` covers, the parts ``evicted`` covers, and the parts neither does.

    >>> [(m.first_seq, m.last_seq, m.state) for m in missing_ranges("e", [(1, 10), (21, 30), (41, 50)], [(11, 15)])]
    [(11, 15, 'evicted'), (16, 20, 'unknown'), (31, 40, 'unknown')]
    >>> [(m.first_seq, m.last_seq, m.state) for m in missing_ranges("e", [(1, 5)], [(8, 9)], [(6, 7)])]
    [(6, 7, 'exported'), (8, 9, 'evicted')]
    """
    got = merge(received)
    extent = max([0] + [b for _, b in got] + [b for _, b in evicted] + [b for _, b in exported])
    holes: list[SeqRange] = []
    position = 1
    for first, last in got:
        if first > position:
            holes.append((position, first - 1))
        position = max(position, last + 1)
    if position <= extent:
        holes.append((position, extent))
    out: list[MissingRange] = []
    not_exported: list[SeqRange] = []
    for first, last, covered in _split(holes, merge(exported)):
        if covered:
            out.append(MissingRange(epoch, first, last, "exported"))
        else:
            not_exported.append((first, last))
    for first, last, covered in _split(not_exported, merge(evicted)):
        out.append(MissingRange(epoch, first, last, "evicted" if covered else "unknown"))
    return sorted(out, key=lambda m: m.first_seq)


def _split(holes: list[SeqRange], covering: list[SeqRange]) -> list[tuple[int, int, bool]]:
    """``holes`` (sorted, disjoint) cut where ``covering`` (merged) starts and ends: each part
    with whether it is covered, in order."""
    out: list[tuple[int, int, bool]] = []
    i = 0  # both lists are sorted: one pass over the covering ranges
    for first, last in holes:
        while i < len(covering) and covering[i][1] < first:
            i += 1
        position = first
        j = i
        while j < len(covering) and covering[j][0] <= last:
            a, b = max(covering[j][0], position), min(covering[j][1], last)
            if a > position:
                out.append((position, a - 1, False))
            out.append((a, b, True))
            position = b + 1
            j += 1
        if position <= last:
            out.append((position, last, False))
    return out


def device_gaps(conn: Connection, device_id: str, epoch: str | None = None) -> list[EpochGaps]:
    """Each epoch of the device (or only ``epoch``) with its missing ranges, by epoch."""
    received: dict[str, list[SeqRange]] = defaultdict(list)
    evicted: dict[str, list[SeqRange]] = defaultdict(list)
    exported: dict[str, list[SeqRange]] = defaultdict(list)
    rq = sa.select(rr.c.epoch, rr.c.first_seq, rr.c.last_seq).where(rr.c.device_id == device_id)
    gq = sa.select(gp.c.epoch, gp.c.first_seq, gp.c.last_seq, gp.c.reason).where(gp.c.device_id == device_id)
    if epoch is not None:
        rq = rq.where(rr.c.epoch == epoch)
        gq = gq.where(gp.c.epoch == epoch)
    for e, a, b in conn.execute(rq):
        received[e].append((a, b))
    for e, a, b, reason in conn.execute(gq):
        (exported if reason == EXPORTED else evicted)[e].append((a, b))
    out = []
    for e in sorted(received.keys() | evicted.keys() | exported.keys()):
        got = merge(received[e])
        announced = evicted[e] + exported[e]
        out.append(
            EpochGaps(
                epoch=e,
                received=sum(b - a + 1 for a, b in got),
                last_known_seq=max([0] + [b for _, b in got] + [b for _, b in announced]),
                missing=missing_ranges(e, got, evicted[e], exported[e]),
            )
        )
    return out
