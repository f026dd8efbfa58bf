"""What the uplink needs from the outbox (``edge_agent.outbox.Outbox`` provides it).

The uplink knows nothing of SQLite; it reads lanes in seq order and deletes what has been
acknowledged.  Contract relied on: ``next_seq`` advances only once an event's commit is
visible to ``fetch``, and ``delete`` of seqs that are already gone is a no-op.  A batch is
``claim``ed before it is published: what the claim returns is never evicted until deleted,
and what it leaves out was evicted since it was fetched (a gap event names it) and is not
sent, so no seq both arrives and is announced evicted (docs/DURABILITY.md).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Protocol

from edge_agent.errors import EdgeAgentError
from edge_agent.events import Lane, StoredEvent

OUTBOX_ERRORS = (sqlite3.Error, OSError, EdgeAgentError)
"""What a failing outbox raises (disk full, I/O error): logged and retried, never fatal."""


class OutboxAPI(Protocol):
    @property
    def epoch(self) -> str: ...

    @property
    def next_seq(self) -> int: ...

    @property
    def priority_mark(self) -> int:
        """Changes whenever priority events are committed: the priority lane, found empty,
        stays empty until it moves (readings, the most of what is committed, do not move it)."""
        ...

    @property
    def pending_count(self) -> int:
        """Events committed and not yet confirmed (reported in the birth message)."""
        ...

    async def fetch(
        self, lane: Lane, *, after_seq: int = 0, before_seq: int | None = None, limit: int = 100
    ) -> list[StoredEvent]: ...

    async def wait_for_events(self, after_seq: int, timeout: float) -> bool: ...

    @property
    def eviction_mark(self) -> int:
        """Changes whenever an eviction starts: read before a fetch, handed to ``claim``."""
        ...

    async def claim(self, seqs: Iterable[int], *, read_at: int | None = None) -> set[int]:
        """Protect ``seqs`` from eviction until deleted; returns those still in the outbox.
        ``read_at``: the ``eviction_mark`` read before they were fetched."""
        ...

    async def delete(self, seqs: Iterable[int]) -> int: ...

    async def record_publish(self, wall_time: float) -> None: ...
