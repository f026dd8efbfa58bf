"""Events the daemon made and could not commit: counted by reason, and announced to the cloud.

An event refused by :meth:`OutboxWriter.submit_or_drop` (the outbox locked by another
process past ``storage.commit_timeout``, a disk full with nothing left to evict, the
writer stopped, an event with no wire form) never got a seq, so the seq arithmetic of
``gap`` events cannot name it.  :class:`DropLedger` counts it instead, by reason and by
sensor, for ``status`` and ``/metrics``; :func:`announce_drops` commits, as soon as commits
work again, one ``gap`` event per series of drops that carries the count and no seqs::

    {"reason": "not_committed", "evicted": [], "count": n,
     "dropped": {"outbox_busy": n, …}, "first_ts": …, "last_ts": …}

``evicted`` is empty (these events have no seqs) and present, so an ingest that only knows
the eviction gaps accepts it (docs/PROTOCOL.md).  A drop is announced once: the count
leaves the ledger's ``unannounced`` only when its gap event is committed.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from edge_agent.events import NewEvent
from edge_agent.outbox.errors import OutboxClosedError, OutboxError, OutboxFullError, OutboxLockedError

log = logging.getLogger("edge_agent.outbox")

DropReason = Literal["outbox_busy", "disk_full", "writer_stopped", "invalid_event", "storage_error"]
DROP_REASONS: tuple[DropReason, ...] = (
    "outbox_busy",
    "disk_full",
    "writer_stopped",
    "invalid_event",
    "storage_error",
)
GAP_REASON = "not_committed"
"""``data.reason`` of the gap event that announces drops (eviction gaps name their cap)."""


def reason_of(exc: BaseException) -> DropReason:
    """Why an event was not committed, from what the writer raised."""
    if isinstance(exc, ValueError):
        return "invalid_event"
    if isinstance(exc, OutboxFullError):
        return "disk_full"
    if isinstance(exc, OutboxClosedError):
        return "writer_stopped"
    cause = exc.__cause__
    if isinstance(exc, OutboxLockedError) or (
        isinstance(cause, sqlite3.OperationalError) and "locked" in str(cause)
    ):
        return "outbox_busy"
    return "storage_error"


class DropLedger:
    """Counts of events not committed since the daemon started, and those not yet announced."""

    def __init__(self) -> None:
        self.by_reason: dict[DropReason, int] = dict.fromkeys(DROP_REASONS, 0)
        self.by_sensor: dict[str, int] = {}
        self.announced = 0
        """Drops whose gap event is committed."""
        self._pending: dict[DropReason, int] = {}
        self._first_ts: str | None = None
        self._last_ts: str | None = None
        self._in_flight = False
        """An announcement was taken and is being committed."""
        self._next_first_ts: str | None = None
        """The first drop after that announcement was taken (first_ts of the next one)."""
        self._committing = asyncio.Event()
        """Set by a commit after drops: the moment to announce them."""
        self.carried = 0
        """Unannounced drops of the previous run (drops_saved.py) not yet announced."""
        self.on_carried_announced: Callable[[], None] | None = None
        """Called once the gap event that announces the carried drops is committed."""

    @property
    def total(self) -> int:
        return sum(self.by_reason.values())

    @property
    def unannounced(self) -> int:
        return sum(self._pending.values())

    def dropped(self, event: NewEvent, exc: BaseException) -> DropReason:
        reason = reason_of(exc)
        self.by_reason[reason] += 1
        if event.sensor is not None:
            self.by_sensor[event.sensor] = self.by_sensor.get(event.sensor, 0) + 1
        self._pending[reason] = self._pending.get(reason, 0) + 1
        self._first_ts = self._first_ts or event.ts
        self._last_ts = event.ts
        if self._in_flight and self._next_first_ts is None:
            self._next_first_ts = event.ts
        return reason

    def carry(self, saved: dict[str, Any]) -> None:
        """Take over the unannounced drops a previous run saved; announced like this run's."""
        for reason, n in saved["dropped"].items():
            self._pending[reason] = self._pending.get(reason, 0) + n
            self.carried += n
        self._first_ts = saved["first_ts"] or self._first_ts
        self._last_ts = self._last_ts or saved["last_ts"]
        self._committing.set()  # the outbox may take events already: announce without waiting

    def committed(self) -> None:
        """An event was committed: the outbox takes events again."""
        if self._pending:
            self._committing.set()

    def announcement(self) -> dict[str, Any] | None:
        """The ``data`` of a gap event for the drops not yet announced (None: there are none)."""
        data = self.unannounced_data()
        if data is not None:
            self._in_flight, self._next_first_ts = True, None
        return data

    def unannounced_data(self) -> dict[str, Any] | None:
        """:meth:`announcement` without taking it (to save it at a stop)."""
        if not self._pending:
            return None
        return {
            "reason": GAP_REASON,
            "evicted": [],
            "count": self.unannounced,
            "dropped": dict(sorted(self._pending.items())),
            "first_ts": self._first_ts,
            "last_ts": self._last_ts,
        }

    def announced_by(self, data: dict[str, Any]) -> None:
        """The gap event with ``data`` is committed: those drops are the cloud's to know now."""
        for reason, n in data["dropped"].items():
            left = self._pending.get(reason, 0) - n
            if left > 0:
                self._pending[reason] = left
            else:
                self._pending.pop(reason, None)
        self.announced += int(data["count"])
        self._in_flight = False
        if self.carried:  # an announcement takes every pending drop, the carried ones too
            self.carried = 0
            if self.on_carried_announced is not None:
                self.on_carried_announced()
        if self._pending:  # dropped while the announcement was committing
            self._first_ts = self._next_first_ts
        else:
            self._first_ts = self._last_ts = None
            self._committing.clear()

    def not_announced(self) -> None:
        """The announcement was refused: wait for the next commit that works."""
        self._in_flight = False
        self._committing.clear()

    async def wait_for_commit_after_drops(self) -> None:
        await self._committing.wait()


async def announce_once(
    ledger: DropLedger,
    submit: Callable[[NewEvent], Awaitable[object]],
    gap_event: Callable[[dict[str, Any]], NewEvent],
) -> bool:
    """Commit one gap event for the unannounced drops; True if there were some and it went in."""
    data = ledger.announcement()
    if data is None:
        return False
    try:
        await submit(gap_event(data))
    except OutboxError as exc:
        ledger.not_announced()
        log.debug("dropped events not announced yet (%s); next commit tries again", exc)
        return False
    ledger.announced_by(data)
    log.warning(
        "announced %d events that were not committed (%s) by a gap event",
        data["count"],
        ", ".join(f"{r} {n}" for r, n in data["dropped"].items()),
    )
    return True


async def announce_drops(
    ledger: DropLedger,
    submit: Callable[[NewEvent], Awaitable[object]],
    gap_event: Callable[[dict[str, Any]], NewEvent],
) -> None:
    """Forever: once a commit succeeds after drops, commit their gap event (see the module doc)."""
    while True:
        await ledger.wait_for_commit_after_drops()
        await announce_once(ledger, submit, gap_event)
