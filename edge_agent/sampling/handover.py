"""Handing readings to the outbox without waiting for their commit.

With a commit window (``storage.commit_interval``) a commit comes up to that long after
the event is handed over; a sampling loop that awaited it would tick late (at 1 Hz and a
1 s window, every other tick).  :class:`HandOver` is the ``emit`` of such a loop: it
starts the committing call (the writer's ``submit_or_drop``, counted by the metrics) in a
task of its own and returns at once, so the loop keeps its cadence.  The task's order of
start is the order of hand-over, so a sensor's events keep their order in the outbox.
A failed commit is the committing call's business (``submit_or_drop`` counts and logs the
drop); :meth:`wait` is for the end, once the writer has flushed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from edge_agent.events import NewEvent


class HandOver:
    def __init__(self, commit: Callable[[NewEvent], Awaitable[object]]) -> None:
        self._commit = commit
        self._pending: set[asyncio.Task[object]] = set()

    @property
    def pending(self) -> int:
        """Events handed over whose commit has not finished."""
        return len(self._pending)

    async def __call__(self, event: NewEvent) -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(self._commit(event))
        self._pending.add(task)  # referenced until done: the loop keeps only weak references
        task.add_done_callback(self._pending.discard)

    async def wait(self) -> None:
        """Wait for every commit handed over so far to finish."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
