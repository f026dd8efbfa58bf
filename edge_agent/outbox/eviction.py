"""Caps and eviction: which events leave the outbox, and the gap events that say so.

:class:`Caps` runs inside the transaction that appends, after the insert, and never
touches the events being appended: by age first (on the runtime clock), then by size
(oldest readings, then oldest priority events), each down to ``LOW_WATER`` of its cap so a
full outbox does not evict on every append.  A full disk evicts through
:meth:`Caps.evict_for_disk` (driven by :mod:`edge_agent.outbox.disk_full`).

Every eviction is counted in the tally, logged in ``evictions`` (the last
``EVICTION_LOG_ROWS`` rows) and announced by ``gap`` events appended in the same
transaction; a gap event that is itself evicted has its ranges folded into the next one.
The age cap costs no query until the oldest event can have reached it (``deadline``).
Events being sent (``claimed``, see :meth:`edge_agent.outbox.Outbox.claim`) are passed
over by every eviction until they are deleted: the next oldest go instead.

Events exported to a file and marked so (:meth:`Caps.remove_exported`, ``buffer export
--mark-exported``) leave the same way but are not evictions: counted apart (``exported``),
logged and announced with reason ``exported``, so neither the device nor the cloud counts
them lost (the cloud's import stores them).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from typing import Any

import aiosqlite

from edge_agent.outbox import codec, ranges
from edge_agent.outbox.codec import EncodedEvent
from edge_agent.outbox.insert import insert
from edge_agent.outbox.runtime import RuntimeClock
from edge_agent.outbox.schema import EVICTION_LOG_ROWS
from edge_agent.outbox.transactions import EvictionReason, Tally
from edge_protocol.wire import seq_ranges

log = logging.getLogger("edge_agent.outbox")

LOW_WATER = 0.9
"""Eviction goes down to this fraction of a cap (hysteresis)."""
SCAN_CHUNK = 5000
"""Rows read per query while choosing what to evict or fix (bounded memory)."""
NO_DEADLINE = math.inf
EXPORTED = "exported"
"""The reason of events carried out in a file (``buffer export --mark-exported``): not lost."""
_READINGS, _PRIORITY = codec.LANE_CODE["readings"], codec.LANE_CODE["priority"]
_LANES_OLDEST_FIRST = (_READINGS, _PRIORITY)
"""The order lanes are evicted in: readings before priority events."""


@dataclasses.dataclass
class Eviction:
    """One eviction round being built."""

    reason: EvictionReason
    evicted: list[ranges.Range] = dataclasses.field(default_factory=list)
    folded: list[ranges.Range] = dataclasses.field(default_factory=list)
    """Ranges announced by gap events that were themselves evicted."""
    folded_exported: list[ranges.Range] = dataclasses.field(default_factory=list)
    """Those of them announced as ``exported``: announced again as exported, never as lost."""
    count: int = 0
    bytes: int = 0


class Caps:
    """The size and age caps of one outbox, and the evictions they (or a full disk) call for."""

    def __init__(
        self,
        conn: aiosqlite.Connection,
        runtime: RuntimeClock,
        *,
        max_bytes: int,
        max_age_s: float,
        gap_event: Callable[[dict[str, Any]], EncodedEvent],
        wall: Callable[[], float],
    ) -> None:
        """``gap_event`` encodes a gap event with the given data; ``wall`` stamps the eviction log."""
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.deadline = NO_DEADLINE
        """Runtime at which the oldest pending event not claimed reaches the age cap."""
        self.claimed: set[int] = set()
        """Seqs being sent (:meth:`Outbox.claim`): no eviction takes them until they are deleted."""
        self.mark = 0
        """Moves before every eviction deletes rows (committed or not): a reader that saw
        the same mark before its fetch knows that nothing it read has been evicted since."""
        self._conn = conn
        self._runtime = runtime
        self._gap_event = gap_event
        self._wall = wall
        self._gap_events_uncommitted = 0
        """Gap events appended by the transaction running now (none once it ends)."""

    async def load_deadline(self) -> None:
        self.deadline = await self._oldest_deadline()

    def exceeded(self, tally: Tally) -> bool:
        """Whether an eviction is due (at open: the caps may have been lowered since the last run)."""
        return self._runtime.now() >= self.deadline or tally.pending_bytes > self.max_bytes

    def inserted(self, runtime: float) -> None:
        """Events stamped ``runtime`` were inserted: they reach the age cap ``max_age_s`` later."""
        self.deadline = min(self.deadline, runtime + self.max_age_s)

    def committed(self) -> int:
        """The transaction committed; returns the gap events it appended."""
        n, self._gap_events_uncommitted = self._gap_events_uncommitted, 0
        return n

    def rolled_back(self) -> None:
        """The transaction was rolled back: its gap events were not committed."""
        self._gap_events_uncommitted = 0
        self.recheck_soon()

    def recheck_soon(self) -> None:
        """A transaction was rolled back: an eviction in it may have moved the deadline,
        so check the age cap again at the next append."""
        self.deadline = min(self.deadline, self._runtime.now())

    async def enforce(self, tally: Tally, protect_from: int) -> None:
        """Evict by age, then by size, never touching seqs >= ``protect_from``."""
        now = self._runtime.now()
        if now >= self.deadline:
            cutoff = now - LOW_WATER * self.max_age_s
            eviction = Eviction("age_cap")
            await self._scan(eviction, "runtime < ?", (cutoff,), protect_from, need=None)
            await self._finish(tally, eviction)
            self.deadline = await self._oldest_deadline()
        if tally.pending_bytes > self.max_bytes:
            need = tally.pending_bytes - int(LOW_WATER * self.max_bytes)
            eviction = Eviction("size_cap")
            await self._evict_oldest(eviction, protect_from, need, tally.pending_count)
            await self._finish(tally, eviction)

    async def evict_for_disk(self, tally: Tally, need: int) -> int:
        """Evict ``need`` bytes, oldest readings first; returns the bytes evicted."""
        eviction = Eviction("disk_full")
        await self._evict_oldest(eviction, tally.last_seq + 1, need, tally.pending_count)
        await self._finish(tally, eviction)
        return eviction.bytes

    async def remove_exported(self, tally: Tally, written: list[ranges.Range]) -> int:
        """In the caller's transaction: delete the events of ``written`` (seq ranges just
        exported to a file), count them as exported, log them and append the gap event(s)
        that announce them with reason ``exported``; returns how many were removed."""
        removed = 0
        for first, last in written:
            self.mark += 1
            rows = list(
                await self._conn.execute_fetchall(
                    "DELETE FROM events WHERE seq BETWEEN ? AND ? RETURNING size", (first, last)
                )
            )
            tally.pending_bytes -= sum(size for (size,) in rows)
            tally.pending_count -= len(rows)
            removed += len(rows)
        if not removed:
            return 0
        tally.exported += removed
        gaps = [
            self._gap_event(
                {"reason": "exported", "evicted": [list(r) for r in chunk], "count": ranges.count(chunk)}
            )
            for chunk in ranges.chunks(written)
        ]
        runtime = self._runtime.now()
        stored = await insert(self._conn, tally, gaps, runtime)
        self._gap_events_uncommitted += len(stored)
        self.inserted(runtime)
        await self._log(EXPORTED, written, stored[0].seq)
        log.info(
            "outbox: %d events exported and removed; announced by gap event seq %d", removed, stored[0].seq
        )
        return removed

    async def _log(self, reason: str, removed: list[ranges.Range], gap_seq: int) -> None:
        """The eviction log (``buffer stats``): the last ``EVICTION_LOG_ROWS`` ranges."""
        wall = self._wall()
        await self._conn.executemany(
            "INSERT INTO evictions (reason, first, last, gap_seq, wall) VALUES (?, ?, ?, ?, ?)",
            [(reason, first, last, gap_seq, wall) for first, last in removed],
        )
        await self._conn.execute(
            "DELETE FROM evictions WHERE id <= (SELECT max(id) FROM evictions) - ?", (EVICTION_LOG_ROWS,)
        )

    async def _oldest_deadline(self) -> float:
        # Claimed events are left out: they are not evicted, and once deleted they are gone.
        rows = list(
            await self._conn.execute_fetchall(
                "SELECT min(runtime) FROM events WHERE seq NOT IN (SELECT value FROM json_each(?))",
                (codec.dumps(sorted(self.claimed)),),
            )
        )
        oldest = rows[0][0]
        return NO_DEADLINE if oldest is None else float(oldest) + self.max_age_s

    async def _evict_oldest(self, eviction: Eviction, protect_from: int, need: int, pending: int) -> None:
        for lane in _LANES_OLDEST_FIRST:
            if lane == _READINGS and not await self._readings_pending(pending):
                continue
            if eviction.bytes < need:
                # A literal, as in Outbox.fetch: so the priority lane's partial index serves.
                await self._scan(eviction, f"lane = {lane:d}", (), protect_from, need=need)

    async def _readings_pending(self, pending: int) -> bool:
        """Whether any of the ``pending`` events is a reading.  Readings are in no index, so
        an outbox of priority events alone (alarms through a long outage) would otherwise be
        read row by row for none; the priority lane's partial index counts the rest cheaply."""
        rows = list(
            await self._conn.execute_fetchall(f"SELECT count(*) FROM events WHERE lane = {_PRIORITY:d}")
        )
        return pending > int(rows[0][0])

    async def _scan(
        self, eviction: Eviction, where: str, params: tuple[Any, ...], protect_from: int, need: int | None
    ) -> None:
        """Delete matching events oldest first until ``need`` bytes are freed (all of them if None).

        Claimed events are passed over: they are being sent and may arrive, so announcing
        them as evicted would report them twice; the next oldest go instead.
        """
        claimed = self.claimed
        after = 0
        while need is None or eviction.bytes < need:
            rows = list(
                await self._conn.execute_fetchall(
                    f"SELECT seq, size, kind FROM events WHERE {where} AND seq > ? AND seq < ?"
                    f" ORDER BY seq LIMIT {SCAN_CHUNK}",
                    (*params, after, protect_from),
                )
            )
            if not rows:
                return
            taken: list[int] = []
            gaps: list[int] = []
            for seq, size, kind in rows:
                after = seq
                if seq in claimed:
                    continue
                taken.append(seq)
                eviction.bytes += size
                if kind == "gap":
                    gaps.append(seq)
                if need is not None and eviction.bytes >= need:
                    break
            if gaps:
                await self._fold(gaps, eviction)
            if taken:
                self.mark += 1
                taken_ranges = seq_ranges(taken)
                await self._conn.executemany("DELETE FROM events WHERE seq BETWEEN ? AND ?", taken_ranges)
                eviction.evicted += taken_ranges
                eviction.count += len(taken)

    async def _fold(self, seqs: list[int], eviction: Eviction) -> None:
        """The ranges the gap events ``seqs`` announce, kept apart by whether they were exported."""
        rows = await self._conn.execute_fetchall(
            "SELECT body FROM events WHERE seq IN (SELECT value FROM json_each(?))", (codec.dumps(seqs),)
        )
        for (body,) in rows:
            data = codec.decode(body, 0).envelope["data"]
            if "epoch" not in data:  # a salvaged gap speaks of its old epoch's seqs: not ours to fold
                folded = [(int(a), int(b)) for a, b in data.get("evicted", [])]
                # Exported events are in a file on their way to the cloud: announced under the
                # cap's reason, the cloud would count them lost.
                (eviction.folded_exported if data.get("reason") == EXPORTED else eviction.folded).extend(
                    folded
                )

    async def _finish(self, tally: Tally, eviction: Eviction) -> None:
        """Count the eviction, log it, and append its gap event(s) in the same transaction."""
        if not eviction.count:
            return
        evicted = ranges.merge(eviction.evicted)
        tally.pending_bytes -= eviction.bytes
        tally.pending_count -= eviction.count
        tally.count_evicted(eviction.reason, eviction.count)
        announced = ranges.merge(evicted + eviction.folded)
        gaps = [
            self._gap_event(
                {
                    "reason": eviction.reason,
                    "evicted": [list(r) for r in chunk],
                    "count": ranges.count(chunk),
                }
            )
            for chunk in ranges.chunks(announced)
        ]
        exported = ranges.merge(eviction.folded_exported)
        gaps += [
            self._gap_event(
                {"reason": EXPORTED, "evicted": [list(r) for r in chunk], "count": ranges.count(chunk)}
            )
            for chunk in ranges.chunks(exported)
        ]
        runtime = self._runtime.now()
        stored = await insert(self._conn, tally, gaps, runtime)
        self._gap_events_uncommitted += len(stored)
        self.inserted(runtime)
        await self._log(eviction.reason, evicted, stored[0].seq)
        log.warning(
            "outbox %s: evicted %d events (%d bytes) in %d seq ranges, first %s; announced by gap event seq %d",
            eviction.reason,
            eviction.count,
            eviction.bytes,
            len(evicted),
            evicted[:3],
            stored[0].seq,
        )
