"""The rows of an append, and the statements that insert them.

The hot path of an append after encoding.  Events go in as multi-row ``INSERT … VALUES
(…), (…), …`` of up to :data:`ROWS_PER_STATEMENT` rows: one ``sqlite3_step`` (and one
release of the GIL) per statement instead of per row, which takes about a quarter off
SQLite's share of an append (``bench/outbox_append.py``).  The rows of a batch need at
most two statements: one shape for every full group of rows, run with ``executemany``, and
one for the rest.  :func:`insert` runs them inside the caller's transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import aiosqlite

from edge_agent.events import StoredEvent
from edge_agent.outbox.codec import EncodedEvent
from edge_agent.outbox.transactions import Tally

COLUMNS = ("seq", "lane", "kind", "size", "runtime", "unsynced", "body")
ROWS_PER_STATEMENT = 128
"""128 rows x 7 columns = 896 parameters: under 999, the limit of SQLite before 3.32."""


@functools.cache
def insert_sql(rows: int) -> str:
    """``INSERT`` of ``rows`` events (cached: a batch uses at most two shapes)."""
    values = ", ".join(["(" + ", ".join("?" * len(COLUMNS)) + ")"] * rows)
    return f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES {values}"


class Rows:
    """The parameters of a batch's insert, the events as stored, and their bytes."""

    __slots__ = ("bytes", "last_seq", "params", "stored")

    def __init__(self, encoded: Sequence[EncodedEvent], after_seq: int, runtime: float) -> None:
        params: list[Any] = []
        stored: list[StoredEvent] = []
        extend, add_stored = params.extend, stored.append
        seq = after_seq
        added = 0
        # EncodedEvent.body() inlined.  The envelope dict is not built: the returned events
        # decode their body if anyone asks.
        for enc in encoded:
            seq += 1
            digits = str(seq)
            size = enc.fixed_size + len(digits)
            kind = enc.event.kind
            body = enc.head + digits + enc.tail
            extend((seq, enc.lane, kind, size, runtime, enc.unsynced, body))
            add_stored(StoredEvent(seq, kind, body, size))
            added += size
        self.params = params
        self.stored = stored
        self.bytes = added
        self.last_seq = seq

    def statements(self) -> tuple[tuple[str, list[list[Any]]] | None, tuple[str, list[Any]] | None]:
        """``(sql, [params, …])`` for ``executemany`` over the full groups, and
        ``(sql, params)`` for the rest; either is None when there is nothing for it."""
        n = len(self.stored)
        full, rest = divmod(n, ROWS_PER_STATEMENT)
        width = ROWS_PER_STATEMENT * len(COLUMNS)
        params = self.params
        groups = None
        if full:
            groups = (
                insert_sql(ROWS_PER_STATEMENT),
                [params[i : i + width] for i in range(0, full * width, width)],
            )
        tail = (insert_sql(rest), params[full * width :]) if rest else None
        return groups, tail


async def insert(
    conn: aiosqlite.Connection, tally: Tally, encoded: Sequence[EncodedEvent], runtime: float
) -> list[StoredEvent]:
    """Insert ``encoded`` with the seqs after ``tally.last_seq``, and count them in ``tally``."""
    rows = Rows(encoded, tally.last_seq, runtime)
    groups, rest = rows.statements()
    if groups is not None:
        await conn.executemany(*groups)
    if rest is not None:
        await conn.execute(*rest)
    tally.last_seq = rows.last_seq
    tally.pending_bytes += rows.bytes
    tally.pending_count += len(rows.stored)
    return rows.stored
