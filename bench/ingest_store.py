"""The ingest store's insert strategies on PostgreSQL, against a bare COPY of the same rows.

    .venv/bin/python bench/ingest_store.py [--events 100000] [--devices 50] [--batch 5000]
        [--url postgresql://postgres@127.0.0.1:5432/postgres]

Readings of three quantities each, from ``--devices`` devices in messages of 100 events,
``--batch`` events per transaction (``consumer.batch_max_events``).  Each run uses a fresh,
migrated database (created and dropped on the server of ``--url``):

- ``baseline``: the ledger rows and the reading rows (``series_id`` already in them),
  already built, COPY-ed (binary) straight into ``event_ids`` and ``readings``, one
  transaction per batch: no de-duplication, no series look-up, no ranges, no devices.  The
  floor of what PostgreSQL takes on this machine.
- ``copy``: ``Store.write`` with the COPY strategy (ledger rows COPY-ed to a temporary
  table, ``INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING``; readings COPY-ed).
- ``executemany``: ``Store.write`` with SQLAlchemy's multi-row ``INSERT … VALUES`` for both.

The CPU column is this process's CPU time per event (``time.process_time``: PostgreSQL's
work is not in it).  ``Store.write`` times include building the rows from the envelopes, which the baseline
does not (the consumer does it in its decoding thread, beside the transaction); that step
is also timed alone, and ``Store.write`` again on rows built beforehand (what the
consumer's writing thread does).  Each strategy then stores the same events again (all duplicates:
the resend case).  Figures are events per second (each reading is three rows), the
median of ``--rounds`` rounds, the three measured in turn in each round so a busy
machine weighs on them alike.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from sqlalchemy.engine import Engine

from edge_cloud.common.db import make_engine
from edge_cloud.ingest import migrate
from edge_cloud.ingest.store import EventsMessage, Store, Work
from edge_cloud.ingest.store.inserts import LEDGER_TYPES, READING_TYPES, reading_rows
from edge_cloud.ingest.store.prepare import prepare
from edge_cloud.ingest.store.rows import LEDGER_COLUMNS, READING_COLUMNS
from edge_cloud.ingest.store.series import SeriesIds
from edge_protocol.wire import ENVELOPE_DICT, rfc3339_ms, uuid7


def make_works(events: int, devices: int, batch: int) -> list[Work]:
    start = int(time.time() * 1000) - events * 10
    messages = []
    seqs = dict.fromkeys(range(devices), 0)
    received = datetime.now(UTC)
    for m in range(events // 100):
        d = m % devices
        envs = []
        for _ in range(100):
            seqs[d] += 1
            ms = start + seqs[d] * devices * 10 + d
            envs.append(
                ENVELOPE_DICT.validate_python(
                    dict(
                        id=uuid7(ms),
                        seq=seqs[d],
                        epoch="bench-epoch",
                        boot="bench-boot",
                        kind="reading",
                        sensor="climate",
                        ts=rfc3339_ms(datetime.fromtimestamp(ms / 1000, UTC)),
                        clock="synced",
                        mono=float(seqs[d]),
                        data={"temperature_c": 19.5, "pressure_pa": 101211.4, "relative_humidity_pct": 42.0},
                    )
                )
            )
        messages.append(EventsMessage(f"bench-{d:04d}", envs, received))
    per = max(1, batch // 100)
    return [Work(events=messages[i : i + per]) for i in range(0, len(messages), per)]


@contextmanager
def fresh_database(admin_url: str) -> Iterator[Engine]:
    name = f"edge_ingest_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(admin_url.rsplit("/", 1)[0] + f"/{name}")
    try:
        migrate.upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def timed(works: list[Work], write: Callable[[Work], object], cpu: list[float] | None = None) -> float:
    """Events/s; and this process's CPU µs per event appended to ``cpu`` (PostgreSQL's
    work is not in it: what a shared, noisy machine distorts least)."""
    n = sum(w.event_count for w in works)
    c0 = time.process_time()
    t0 = time.perf_counter()
    for w in works:
        write(w)
    elapsed = time.perf_counter() - t0
    if cpu is not None:
        cpu.append((time.process_time() - c0) / n * 1e6)
    return n / elapsed


def baseline(engine: Engine, works: list[Work]) -> float:
    """COPY of rows built beforehand: no conflicts handled, nothing else written.  The
    series rows are made (and their ids put in the rows) before the clock starts."""
    prepared = [prepare(w) for w in works]
    with engine.begin() as conn:
        keys = {(e.key[0], r[0], r[1]) for p in prepared for e in p.events for r in e.readings}
        ids, _ = SeriesIds().resolve(conn, keys)
    built = [([e.ledger for e in p.events], list(reading_rows(p.events, ids))) for p in prepared]
    n = sum(w.event_count for w in works)
    raw = engine.raw_connection()
    try:
        pg = raw.driver_connection
        assert pg is not None
        t0 = time.perf_counter()
        for ledger, rows in built:
            with pg.cursor() as cur:
                with cur.copy(
                    f"COPY event_ids ({', '.join(LEDGER_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    copy.set_types(LEDGER_TYPES)
                    for row in ledger:
                        copy.write_row(row)
                with cur.copy(
                    f"COPY readings ({', '.join(READING_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    copy.set_types(READING_TYPES)
                    for row in rows:
                        copy.write_row(row)
            pg.commit()
        return n / (time.perf_counter() - t0)
    finally:
        raw.close()


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    works = make_works(args.events, args.devices, args.batch)
    print(
        f"{args.events} readings (3 quantities), {args.devices} devices, {args.batch} events per "
        f"transaction, median of {args.rounds} rounds"
    )
    figures: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        with fresh_database(args.url) as engine:
            figures.setdefault("baseline", []).append(baseline(engine, works))
        for strategy in ("copy", "executemany"):
            with fresh_database(args.url) as engine:
                store = Store(engine, quarantine_rows=1000, strategy=strategy)
                figures.setdefault(strategy, []).append(
                    timed(works, store.write, figures.setdefault(f"{strategy} cpu", []))
                )
                figures.setdefault(f"{strategy} again", []).append(timed(works, store.write))
            # As in the consumer, whose decoding thread builds the rows beside the transaction.
            built = make_works(args.events, args.devices, args.batch)
            for w in built:
                for m in w.events:
                    assert m.converted
            gc.freeze()  # as serve's tune_gc: the garbage collector not scanning them again and again
            try:
                with fresh_database(args.url) as engine:
                    store = Store(engine, quarantine_rows=1000, strategy=strategy)
                    figures.setdefault(f"{strategy} built", []).append(
                        timed(built, store.write, figures.setdefault(f"{strategy} built cpu", []))
                    )
            finally:
                gc.unfreeze()
                del built  # not left for the collector to scan in the next measurements
        figures.setdefault("conversion", []).append(
            timed(
                make_works(args.events, args.devices, args.batch),
                lambda w: [m.converted for m in w.events],
                figures.setdefault("conversion cpu", []),
            )
        )
    print(f"  baseline: bare COPY of the rows    {median(figures['baseline']):>9,.0f} events/s")
    print(
        f"  envelope -> rows alone (Python)    {median(figures['conversion']):>9,.0f} events/s"
        f"  {median(figures['conversion cpu']):5.1f} µs CPU/event"
    )
    for strategy in ("copy", "executemany"):
        print(
            f"  Store.write, {strategy:<12}  new {median(figures[strategy]):>9,.0f} events/s "
            f"{median(figures[strategy + ' cpu']):5.1f} µs CPU/event   "
            f"all duplicates {median(figures[strategy + ' again']):>9,.0f} events/s   "
            f"new, rows built beforehand {median(figures[strategy + ' built']):>9,.0f} events/s "
            f"{median(figures[strategy + ' built cpu']):5.1f} µs CPU/event"
        )


if __name__ == "__main__":
    main()
