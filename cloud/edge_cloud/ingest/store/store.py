"""The write path: one :class:`Work` in one transaction, exactly once, and what to acknowledge.

In the transaction, in this order: the devices are touched (row locks, device-id order),
status messages applied, the events inserted-or-ignored into the ``event_ids`` ledger,
the series of new readings resolved (``series``), the rows of the events new to it
written to their tables, the seqs merged into
``received_ranges``, gap counts added to ``devices.evicted_events``, refusals written to
the quarantine.  Only after the commit does the caller acknowledge anything.

The acknowledgement covers every seq of the work: stored now, stored before (a
duplicate: the device must hear it again, or it resends for ever), or refused one by one
(it will never become valid).  A failure is converted at this boundary: transient ones
(connection, deadlock, serialization, a locked SQLite file, a missing table) raise
:class:`StoreUnavailable` after a few jittered retries, a value the database refuses
raises :class:`StoreRejected`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from edge_cloud.ingest.errors import StoreRejected, StoreUnavailable
from edge_cloud.ingest.store import devices, quarantine, received
from edge_cloud.ingest.store.inserts import Inserts, inserter_for
from edge_cloud.ingest.store.model import DeviceAck, Outcome, Work
from edge_cloud.ingest.store.prepare import Prepared, prepare
from edge_cloud.ingest.store.rows import SeriesKey
from edge_cloud.ingest.store.series import SeriesIds
from edge_cloud.ingest.tables import alarms, gaps, status_events, test_results
from edge_protocol.wire import seq_ranges

log = logging.getLogger(__name__)

_KIND_TABLES = {t.name: t for t in (test_results, alarms, status_events, gaps)}
ATTEMPTS = 4
"""Attempts of one transaction before a transient failure is the caller's to retry."""


class Store:
    """Writes :class:`Work` to the ingest database (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, *, quarantine_rows: int, strategy: str | None = None) -> None:
        self.engine = engine
        self.quarantine_rows = quarantine_rows
        self.inserts: Inserts = inserter_for(engine.dialect.name, strategy)
        self.series = SeriesIds()

    def write(self, work: Work) -> Outcome:
        """Store ``work`` in one transaction; raises :class:`StoreUnavailable` / :class:`StoreRejected`."""
        prepared = prepare(work)
        for attempt in Retrying(
            retry=retry_if_exception_type(StoreUnavailable),
            wait=wait_random_exponential(multiplier=0.05, max=1.0),
            stop=stop_after_attempt(ATTEMPTS),
            reraise=True,
        ):
            with attempt:
                return self._write_once(work, prepared)
        raise AssertionError("unreachable")  # pragma: no cover - Retrying reraises

    def _write_once(self, work: Work, prepared: Prepared) -> Outcome:
        try:
            with self.engine.begin() as conn:
                new, series_read = self._transaction(conn, work, prepared)
        except sa.exc.StatementError as exc:
            raise _converted(exc) from exc
        except Exception as exc:
            converted = _converted_driver(exc)
            if converted is None:
                raise
            raise converted from exc
        self.series.remember(series_read)
        return Outcome(
            stored=new,
            duplicates=len(prepared.events) - new + prepared.repeated,
            refused_events=tuple(prepared.refused),
            acks=tuple(
                DeviceAck(device_id, epoch, tuple(seq_ranges(seqs)))
                for (device_id, epoch), seqs in sorted(prepared.seqs.items())
            ),
        )

    def _transaction(
        self, conn: Connection, work: Work, prepared: Prepared
    ) -> tuple[int, dict[SeriesKey, int]]:
        """The events newly stored, and the series ids read (to remember once committed)."""
        devices.touch(conn, prepared.seen)
        devices.apply_statuses(conn, work.statuses)
        inserted = self.inserts.ledger(conn, [e.ledger for e in prepared.events])
        new = prepared.events if inserted is None else [e for e in prepared.events if e.key in inserted]
        by_table: dict[str, list[dict[str, Any]]] = defaultdict(list)
        evicted: dict[str, int] = defaultdict(int)
        dropped: dict[str, int] = defaultdict(int)
        for e in new:
            if e.rows:
                by_table[e.table].extend(e.rows)
            if e.evicted:
                evicted[e.key[0]] += e.evicted
            if e.dropped:
                dropped[e.key[0]] += e.dropped
        series_keys = {(e.key[0], r[0], r[1]) for e in new for r in e.readings}
        ids, series_read = self.series.resolve(conn, series_keys)
        self.inserts.readings(conn, new, ids)
        for name, rows in by_table.items():
            if rows:
                conn.execute(_KIND_TABLES[name].insert(), rows)
        received.note(conn, prepared.seqs)
        devices.add_evicted(conn, evicted)
        devices.add_dropped(conn, dropped)
        quarantine.record(conn, [*work.refusals, *prepared.refused], keep=self.quarantine_rows)
        return len(new), series_read


def _converted(exc: sa.exc.StatementError) -> StoreUnavailable | StoreRejected:
    """The data itself (a value, a constraint) is refused; anything else may pass."""
    if isinstance(exc, sa.exc.DataError | sa.exc.IntegrityError) or not isinstance(exc, sa.exc.DBAPIError):
        return StoreRejected(f"the database refused the data: {_first_line(exc)}")
    return StoreUnavailable(f"database unavailable: {_first_line(exc)}")


def _converted_driver(exc: Exception) -> StoreUnavailable | StoreRejected | None:
    """psycopg's own errors, from the COPY path (which runs under SQLAlchemy)."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return None
    if isinstance(exc, psycopg.errors.DataError | psycopg.errors.IntegrityError):
        return StoreRejected(f"the database refused the data: {_first_line(exc)}")
    if isinstance(exc, psycopg.Error):
        return StoreUnavailable(f"database unavailable: {_first_line(exc)}")
    return None


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
