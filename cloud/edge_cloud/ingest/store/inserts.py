"""How rows go in: the ledger's insert-or-ignore, and bulk rows, per database.

Two strategies, chosen by :func:`inserter_for` (figures in docs/INGEST.md and
``bench/ingest_store.py``):

- :class:`ExecutemanyInserts` — SQLAlchemy Core: ``INSERT … ON CONFLICT DO NOTHING
  RETURNING`` sent as multi-row ``VALUES`` (SQLAlchemy's "insertmanyvalues"), rows the
  same way.  What SQLite uses; on PostgreSQL it is the slower one.
- :class:`CopyInserts` — PostgreSQL: the ledger rows ``COPY``-ed straight into
  ``event_ids`` in a savepoint when the previous batch had no duplicates (if one is
  there after all, the unique violation rolls the savepoint back), else ``COPY``-ed into a
  temporary table, then ``INSERT INTO event_ids SELECT … ORDER BY … ON CONFLICT DO
  NOTHING RETURNING``;
  readings ``COPY``-ed (binary) straight into ``readings`` (the new events are known by then, so
  nothing there can conflict; PostgreSQL routes each row to its partition).

Readings come as the events' rows, each naming its series by sensor and quantity; the
caller passes the ids (``series.SeriesIds``) and each row is written with its ``series_id``.

Either way the ledger insert is what makes an event stored once: on PostgreSQL a
transaction inserting a key another open transaction has just inserted waits for it,
then skips the row if that one committed (and inserts it if it rolled back), so each of
two ingest processes acknowledges the event only after a commit that holds it.  The
rows are inserted in key order so two such transactions take their locks in the same
order.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from edge_cloud.ingest.store.rows import (
    LEDGER_COLUMNS,
    READING_COLUMNS,
    EventKey,
    EventRows,
    LedgerRow,
    SeriesKey,
)
from edge_cloud.ingest.tables import event_ids, readings

LEDGER_TYPES = ("text", "text", "text", "int8", "text", "timestamptz")
READING_TYPES = ("int4", "timestamptz", "float8", "text", "bool", "int8")
_TEMP = "ingest_new_event_ids"


def dialect_insert(conn: Connection, table: sa.Table) -> Any:
    """The dialect's INSERT (it has ``on_conflict_do_nothing`` / ``_do_update`` and ``excluded``)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


class Inserts(Protocol):
    name: str

    def ledger(self, conn: Connection, rows: Sequence[LedgerRow]) -> set[EventKey] | None:
        """Insert-or-ignore ``rows`` into ``event_ids``; the keys actually inserted, or None
        when all of them were (the usual case, told without a set of them all)."""

    def readings(self, conn: Connection, events: Sequence[EventRows], ids: Mapping[SeriesKey, int]) -> None:
        """Append the reading rows of ``events`` (all new) to ``readings``, each series as
        its id in ``ids``."""


def reading_rows(events: Sequence[EventRows], ids: Mapping[SeriesKey, int]) -> Iterator[tuple[Any, ...]]:
    """The stored rows of ``events``' readings, in :data:`READING_COLUMNS` order."""
    for e in events:
        device_id = e.key[0]
        for sensor, quantity, ts, value, event_id, synced, cal in e.readings:
            yield (ids[device_id, sensor, quantity], ts, value, event_id, synced, cal)


class ExecutemanyInserts:
    name = "executemany"

    def ledger(self, conn: Connection, rows: Sequence[LedgerRow]) -> set[EventKey]:
        if not rows:
            return set()
        stmt = (
            dialect_insert(conn, event_ids)
            .on_conflict_do_nothing(index_elements=["device_id", "id"])
            .returning(event_ids.c.device_id, event_ids.c.id)
        )
        ordered = [dict(zip(LEDGER_COLUMNS, r, strict=True)) for r in sorted(rows)]
        return {(d, i) for d, i in conn.execute(stmt, ordered)}

    def readings(self, conn: Connection, events: Sequence[EventRows], ids: Mapping[SeriesKey, int]) -> None:
        rows = [dict(zip(READING_COLUMNS, r, strict=True)) for r in reading_rows(events, ids)]
        if rows:
            conn.execute(readings.insert(), rows)


class CopyInserts:
    name = "copy"

    def __init__(self) -> None:
        self._expect_new = True
        """Whether the last batch had no duplicates (the usual case): then this one is tried
        as a bare COPY into the ledger first."""

    def ledger(self, conn: Connection, rows: Sequence[LedgerRow]) -> set[EventKey] | None:
        if not rows:
            return None
        ordered = sorted(rows)  # by (device_id, id): unique, so the rest never decides
        if self._expect_new and _copy_if_all_new(conn, ordered):
            return None
        cols = ", ".join(LEDGER_COLUMNS)
        with _driver(conn).cursor() as cur:
            # One per connection (a temporary table lives as long as its session); emptied
            # at each commit.  LIKE copies the column types, so COPY parses them the same.
            cur.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {_TEMP} (LIKE event_ids) ON COMMIT DELETE ROWS"
            )
            _copy(cur, _TEMP, ordered)
            cur.execute(
                f"INSERT INTO event_ids ({cols}) SELECT {cols} FROM {_TEMP} ORDER BY device_id, id "
                "ON CONFLICT DO NOTHING RETURNING device_id, id"
            )
            inserted = {(str(d), str(i)) for d, i in cur.fetchall()}
        self._expect_new = len(inserted) == len(rows)
        return inserted

    def readings(self, conn: Connection, events: Sequence[EventRows], ids: Mapping[SeriesKey, int]) -> None:
        if not any(e.readings for e in events):
            return
        with (
            _driver(conn).cursor() as cur,
            cur.copy(f"COPY readings ({', '.join(READING_COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy,
        ):
            # Binary: a fifth of the client CPU of text COPY (the server's work is the same),
            # and the ingest's CPU is also what decodes the JSON.
            copy.set_types(READING_TYPES)
            write = copy.write_row
            for row in reading_rows(events, ids):
                write(row)


def _copy_if_all_new(conn: Connection, rows: Sequence[LedgerRow]) -> bool:
    """COPY ``rows`` straight into the ledger, in a savepoint: all of them new, or (a
    unique violation: a duplicate among them) none, and False.  Half the database's work
    of the temporary table's way when the batch holds no duplicate, which is most of the
    time; a key another transaction is inserting is waited for as with ON CONFLICT."""
    import psycopg

    with _driver(conn).cursor() as cur:
        cur.execute("SAVEPOINT ingest_ledger")
        try:
            _copy(cur, "event_ids", rows)
        except psycopg.errors.UniqueViolation:
            cur.execute("ROLLBACK TO SAVEPOINT ingest_ledger")
            return False
        cur.execute("RELEASE SAVEPOINT ingest_ledger")
        return True


def _copy(cur: Any, table: str, rows: Sequence[LedgerRow]) -> None:
    with cur.copy(f"COPY {table} ({', '.join(LEDGER_COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(LEDGER_TYPES)
        write = copy.write_row
        for r in rows:
            write(r)


def _driver(conn: Connection) -> Any:
    """psycopg's own connection under SQLAlchemy's (same session, same transaction)."""
    return conn.connection.driver_connection


def inserter_for(conn_or_dialect: str, strategy: str | None = None) -> Inserts:
    """COPY on PostgreSQL (measured faster), executemany elsewhere; ``strategy`` forces one."""
    if strategy == "executemany" or (strategy is None and conn_or_dialect != "postgresql"):
        return ExecutemanyInserts()
    return CopyInserts()
