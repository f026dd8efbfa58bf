"""Deleting confirmed events from the outbox, coalesced.

Confirmations arrive one batch (or one ack) at a time; one task deletes everything
confirmed since its last transaction, so the outbox sees one transaction per burst of
acknowledgements, not per batch.  A seq stays "being deleted" until its delete commits:
a lane read after a reconnect must not send it again meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from edge_agent.uplink.outbox_api import OUTBOX_ERRORS, OutboxAPI
from edge_agent.uplink.problems import ProblemSeries
from edge_agent.uplink.stats import UplinkStats

log = logging.getLogger("edge_agent.uplink")


class Deletions:
    def __init__(
        self,
        outbox: OutboxAPI,
        stats: UplinkStats,
        outbox_problem: ProblemSeries,
        *,
        wall_clock: Callable[[], float],
    ) -> None:
        self._outbox = outbox
        self._stats = stats
        self._outbox_problem = outbox_problem
        self._wall = wall_clock
        self._confirmed: list[int] = []
        """Confirmed seqs waiting for a delete."""
        self._deleting: set[int] = set()
        """Confirmed seqs whose delete has not committed yet (those waiting included)."""
        self._needed = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._last_confirm_wall = 0.0

    def holds(self, seq: int) -> bool:
        """Is ``seq`` confirmed and not yet deleted?"""
        return seq in self._deleting

    def highest_seq(self) -> int:
        """The highest seq not yet deleted, 0 when none is."""
        return max(self._deleting, default=0)

    def add(self, seqs: set[int]) -> None:
        """Confirmed: to be deleted at the next :meth:`wake` (or the one after)."""
        self._confirmed.extend(seqs)
        self._deleting.update(seqs)
        self._idle.clear()
        self._last_confirm_wall = self._wall()

    def wake(self) -> None:
        self._needed.set()

    async def run(self) -> None:
        """Delete what is confirmed, for as long as the forwarder runs (cancel to end)."""
        while True:
            await self._needed.wait()
            self._needed.clear()
            while self._confirmed:
                self._idle.clear()
                seqs, self._confirmed = self._confirmed, []
                wall = self._last_confirm_wall
                try:
                    await self._outbox.delete(seqs)
                    await self._outbox.record_publish(wall)
                except OUTBOX_ERRORS as exc:
                    self._confirmed[:0] = seqs
                    self._outbox_problem.failed(exc, "deleting again in 1 s (the events may be sent twice)")
                    await asyncio.sleep(1.0)
                    continue
                self._deleting.difference_update(seqs)
                self._stats.last_publish_at = wall
            self._idle.set()

    async def flush(self, timeout: float) -> None:
        """Wait up to ``timeout`` for every confirmed seq to be deleted; warn if some are not."""
        if self._idle.is_set():
            return
        self._needed.set()
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            log.warning(
                "MQTT: %d acknowledged event(s) not yet deleted; they may be sent again",
                len(self._confirmed) + len(self._deleting),
            )
