"""Query latency of ``GET /v1/devices/{id}/readings`` on a PostgreSQL table of 10 million
readings, beside a bare-SQL baseline of the same queries measured in the same run.

    .venv/bin/python bench/ingest_query.py [--rows 10000000] [--devices 20] [--days 40]
        [--repeat 30] [--url postgresql://postgres@127.0.0.1:5432/postgres] [--explain]

A fresh database (created on the server of ``--url``, dropped afterwards), migrated, its
``readings`` partitions made the way ``edge-ingest db upgrade`` makes them (one per day,
``partitions.maintain`` run for each day of the data), then ``--rows`` readings binary-
COPY-ed in: ``--devices`` devices, each with a ``climate`` sensor (three quantities per
reading) and a ``power`` sensor (two), readings evenly spread over ``--days`` days (20
devices, 40 days: one reading every 35 s per sensor, 100,000 rows per series).  Then
``ANALYZE``.  The ledger (``event_ids``) holds the readings' events: a page's epoch and seq
are read from it.

Each query runs ``--repeat`` times in turn with the others (so a busy machine weighs on
all alike), each time on another device and day; the table gives the median and the 95th
percentile in milliseconds:

- *baseline*: the query written by hand in SQL, run through psycopg, rows fetched;
- *query function*: ``queries.readings`` through SQLAlchemy (the route's database work);
- *HTTP*: the route, through a real uvicorn on a local port with a real token (JSON of
  the whole page included; client and server share the process and its GIL).

Target (issue 13): the one-day, one-sensor, one-quantity range under 50 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import httpx  # noqa: E402
import psycopg  # noqa: E402
import sqlalchemy as sa  # noqa: E402
import uvicorn  # noqa: E402
from ingest_store import fresh_database  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from edge_cloud.ingest import partitions  # noqa: E402
from edge_cloud.ingest.api.app import create_app  # noqa: E402
from edge_cloud.ingest.api.state import ApiState  # noqa: E402
from edge_cloud.ingest.queries.readings import list_buckets, list_readings  # noqa: E402
from edge_cloud.ingest.settings import IngestSettings  # noqa: E402
from edge_cloud.ingest.store.inserts import LEDGER_TYPES, READING_TYPES  # noqa: E402
from edge_cloud.ingest.store.rows import LEDGER_COLUMNS, READING_COLUMNS  # noqa: E402
from edge_protocol.wire import uuid7  # noqa: E402
from tests.cloud.ingest_write.test_import import Tokens  # noqa: E402
from tests.mosquitto import free_port  # noqa: E402

SENSORS = {
    "climate": ("pressure_pa", "relative_humidity_pct", "temperature_c"),
    "power": ("current_a", "voltage_v"),
}
PAGE = 1000
"""The route's default ``limit``: the first page of a day is this many rows."""


def load(engine: Engine, *, rows: int, devices: int, days: int, end: datetime) -> int:
    """Partitions for the span, the rows COPY-ed, ANALYZE; the number of rows loaded."""
    start = end - timedelta(days=days)
    for day in range(days + 1):
        partitions.maintain(engine, interval="day", retention_s=None, now=start + timedelta(days=day))
    per_reading = sum(len(q) for q in SENSORS.values())
    events_per_series = max(1, rows // (devices * per_reading))
    step = timedelta(days=days) / events_per_series
    loaded = 0
    raw = engine.raw_connection()
    try:
        pg = raw.driver_connection
        assert pg is not None
        with pg.cursor() as cur:
            cur.executemany(
                "INSERT INTO series (device_id, sensor, quantity) VALUES (%s, %s, %s)",
                [
                    (f"bench-{d:04d}", sensor, quantity)
                    for d in range(devices)
                    for sensor, quantities in SENSORS.items()
                    for quantity in quantities
                ],
            )
            cur.execute("SELECT device_id, sensor, quantity, series_id FROM series")
            ids = {(d, s, q): i for d, s, q, i in cur.fetchall()}
            ledger: list[tuple[object, ...]] = []
            with cur.copy(f"COPY readings ({', '.join(READING_COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(READING_TYPES)
                for d in range(devices):
                    device = f"bench-{d:04d}"
                    # Devices and sensors a little apart in time, as real clocks are.
                    offset = timedelta(milliseconds=37 * d)
                    for s, (sensor, quantities) in enumerate(SENSORS.items()):
                        base = start + offset + timedelta(milliseconds=11 * s)
                        for i in range(events_per_series):
                            ts = base + step * i
                            event_id = uuid7(int(ts.timestamp() * 1000))
                            ledger.append(
                                (device, event_id, "e", s * events_per_series + i + 1, "reading", ts)
                            )
                            for q, quantity in enumerate(quantities):
                                value = 20.0 + ((i * 7 + q) % 1000) / 10
                                copy.write_row(
                                    (ids[(device, sensor, quantity)], ts, value, event_id, True, None)
                                )
                                loaded += 1
            # The ledger: the readings' epoch and seq are read from it.
            with cur.copy(f"COPY event_ids ({', '.join(LEDGER_COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(LEDGER_TYPES)
                for row in ledger:
                    copy.write_row(row)
            now = datetime.now(UTC)
            cur.executemany(
                "INSERT INTO devices (device_id, first_seen, last_seen, evicted_events) VALUES (%s, %s, %s, 0)",
                [(f"bench-{d:04d}", now, now) for d in range(devices)],
            )
            pg.commit()
            cur.execute("ANALYZE")
            pg.commit()
    finally:
        raw.close()
    return loaded


@contextmanager
def served(engine: Engine, tokens: Tokens, state_dir: Path) -> Iterator[str]:
    """The ingest's app on a real uvicorn in a thread; its base URL."""
    settings = IngestSettings.model_validate({"state_dir": state_dir, "database": {"url": str(engine.url)}})
    app = create_app(ApiState(settings=settings, engine=engine, token_verifier=tokens.verifier))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


# The page first, then its epoch and seq from the ledger (joined before the LIMIT, the
# planner probes the ledger for rows the page does not keep).
_PAGE_SQL = (
    "SELECT p.ts, p.sensor, p.quantity, p.value, p.event_id, e.epoch, e.seq, p.clock_synced, p.cal FROM ("
    "SELECT r.ts, s.device_id, s.sensor, s.quantity, r.value, r.event_id, r.clock_synced, r.cal "
    "FROM series s JOIN readings r ON r.series_id = s.series_id "
    "WHERE s.device_id = %s AND s.sensor = %s {quantity} AND r.ts >= %s AND r.ts < %s "
    "ORDER BY {order} LIMIT %s) p JOIN event_ids e ON e.device_id = p.device_id AND e.id = p.event_id "
    "ORDER BY {outer}"
)
SERIES_SQL = _PAGE_SQL.format(
    quantity="AND s.quantity = %s", order="r.ts, r.event_id", outer="p.ts, p.event_id"
)
# The obvious way to merge a sensor's quantities: one query, sorted (what the query
# function's UNION ALL of one index scan per series avoids).
SENSOR_SQL = _PAGE_SQL.format(
    quantity="",
    order="r.ts, r.event_id, s.sensor, s.quantity",
    outer="p.ts, p.event_id, p.sensor, p.quantity",
)
BUCKET_SQL = (
    "SELECT s.sensor, s.quantity, date_bin(%s, r.ts, %s) AS bucket, count(*), min(r.value), avg(r.value), "
    "max(r.value) FROM series s JOIN readings r ON r.series_id = s.series_id "
    "WHERE s.device_id = %s AND s.sensor = %s AND s.quantity = %s AND r.ts >= %s AND r.ts < %s "
    "GROUP BY s.sensor, s.quantity, bucket ORDER BY bucket, s.sensor, s.quantity LIMIT %s"
)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--days", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--explain", action="store_true", help="print the plans of the query function")
    args = parser.parse_args()
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    with fresh_database(args.url) as engine, tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        loaded = load(engine, rows=args.rows, devices=args.devices, days=args.days, end=end)
        print(
            f"{loaded:,} readings ({args.devices} devices, 5 series each, {args.days} days, daily partitions) "
            f"loaded by COPY in {time.perf_counter() - t0:.0f} s; median and p95 of {args.repeat} runs, ms"
        )
        tokens = Tokens()
        headers = tokens.token("events:read", ttl=3600)
        pg = psycopg.connect(str(engine.url).replace("postgresql+psycopg", "postgresql"), autocommit=True)
        with served(engine, tokens, Path(tmp)) as base, httpx.Client(base_url=base, headers=headers) as http:

            def day_of(run: int) -> tuple[str, datetime, datetime]:
                """Another device and day each run (first and last days skipped: partial)."""
                device = f"bench-{run % args.devices:04d}"
                since = end - timedelta(days=2 + run % max(1, args.days - 3))
                return device, since, since + timedelta(days=1)

            def month_of(run: int) -> tuple[str, datetime, datetime]:
                device = day_of(run)[0]
                return device, end - timedelta(days=min(30, args.days)), end

            def sql(query: str, params: Callable[[int], tuple[object, ...]]) -> Callable[[int], int]:
                def run(n: int) -> int:
                    return len(pg.execute(query, params(n)).fetchall())

                return run

            def function(call: Callable[[sa.Connection, int], list[object]]) -> Callable[[int], int]:
                def run(n: int) -> int:
                    with engine.connect() as conn:
                        return len(call(conn, n))

                return run

            def api(params: Callable[[int], tuple[str, dict[str, str]]], key: str) -> Callable[[int], int]:
                def run(n: int) -> int:
                    device, query = params(n)
                    r = http.get(f"/v1/devices/{device}/readings", params=query)
                    r.raise_for_status()
                    return len(r.json()[key])

                return run

            def day_params(run: int, **extra: str) -> tuple[str, dict[str, str]]:
                device, since, until = day_of(run)
                return device, {"since": since.isoformat(), "until": until.isoformat(), **extra}

            def day_page(c: sa.Connection, run: int, **series: str) -> list[object]:
                """The first page of ``run``'s day through the query function."""
                device, since, until = day_of(run)
                return list(list_readings(c, device, limit=PAGE + 1, since=since, until=until, **series))

            hour = timedelta(hours=1)

            def hourly(
                label: str, window: Callable[[int], tuple[str, datetime, datetime]]
            ) -> list[tuple[str, str, Callable[[int], int]]]:
                """One climate quantity of ``window`` in hourly buckets: bare SQL, function, HTTP."""

                def params(run: int) -> tuple[str, dict[str, str]]:
                    device, since, until = window(run)
                    return device, {
                        "since": since.isoformat(),
                        "until": until.isoformat(),
                        "sensor": "climate",
                        "quantity": "temperature_c",
                        "every": "1h",
                    }

                def bare(n: int) -> tuple[object, ...]:
                    device, since, until = window(n)
                    return (hour, since, device, "climate", "temperature_c", since, until, PAGE + 1)

                def call(c: sa.Connection, n: int) -> list[object]:
                    device, since, until = window(n)
                    return list(
                        list_buckets(
                            c,
                            device,
                            every=hour,
                            since=since,
                            until=until,
                            limit=PAGE + 1,
                            sensor="climate",
                            quantity="temperature_c",
                        )
                    )

                return [
                    (label, "baseline SQL", sql(BUCKET_SQL, bare)),
                    ("", "query function", function(call)),
                    ("", "HTTP", api(params, "buckets")),
                ]

            cases: list[tuple[str, str, Callable[[int], int]]] = [
                (
                    "1 day, 1 sensor, 1 quantity, first page",
                    "baseline SQL",
                    sql(
                        SERIES_SQL,
                        lambda n: (*day_of(n)[:1], "climate", "temperature_c", *day_of(n)[1:], PAGE + 1),
                    ),
                ),
                (
                    "",
                    "query function",
                    function(lambda c, n: day_page(c, n, sensor="climate", quantity="temperature_c")),
                ),
                (
                    "",
                    "HTTP",
                    api(lambda n: day_params(n, sensor="climate", quantity="temperature_c"), "readings"),
                ),
                (
                    "1 day, 1 sensor, all 3 quantities, first page",
                    "baseline SQL (one sorted query)",
                    sql(SENSOR_SQL, lambda n: (*day_of(n)[:1], "climate", *day_of(n)[1:], PAGE + 1)),
                ),
                (
                    "",
                    "query function",
                    function(lambda c, n: day_page(c, n, sensor="climate")),
                ),
                ("", "HTTP", api(lambda n: day_params(n, sensor="climate"), "readings")),
                *hourly("every=1h over 1 day, 1 quantity", day_of),
                *hourly("every=1h over 30 days, 1 quantity", month_of),
            ]
            times: dict[int, list[float]] = {i: [] for i in range(len(cases))}
            counts: dict[int, int] = {}
            for i, (_title, _how, run) in enumerate(cases):
                counts[i] = run(0)  # warm the caches and the connection pools once
            for n in range(args.repeat):
                for i, (_title, _how, run) in enumerate(cases):
                    t = time.perf_counter()
                    run(n)
                    times[i].append((time.perf_counter() - t) * 1000)
            print(f"  {'query':<46} {'how':<32} {'rows':>6} {'median':>8} {'p95':>8}")
            for i, (title, how, _run) in enumerate(cases):
                print(
                    f"  {title:<46} {how:<32} {counts[i]:>6} {statistics.median(times[i]):>8.1f} "
                    f"{percentile(times[i], 0.95):>8.1f}"
                )
            if args.explain:
                device, since, until = day_of(0)
                with engine.connect() as conn:
                    for sensor, quantity in (("climate", "temperature_c"), ("climate", None)):
                        compiled = _explain(conn, device, sensor, quantity, since, until)
                        print(f"\nplan of list_readings(sensor={sensor}, quantity={quantity}):\n{compiled}")
        pg.close()


def _explain(
    conn: sa.Connection, device: str, sensor: str, quantity: str | None, since: datetime, until: datetime
) -> str:
    """EXPLAIN ANALYZE of the statement ``list_readings`` runs (caught as it executes)."""
    plans: list[str] = []

    def before(
        c: sa.Connection, _cursor: object, statement: str, params: object, _ctx: object, _many: bool
    ) -> None:
        if statement.startswith("EXPLAIN"):
            return
        if "event_ids" in statement:
            rows = c.exec_driver_sql("EXPLAIN (ANALYZE, COSTS OFF) " + statement, params)  # type: ignore[arg-type]
            plans.append("\n".join(r[0] for r in rows))

    sa.event.listen(conn, "before_cursor_execute", before)
    try:
        list_readings(
            conn, device, limit=PAGE + 1, sensor=sensor, quantity=quantity, since=since, until=until
        )
    finally:
        sa.event.remove(conn, "before_cursor_execute", before)
    return "\n".join(plans)


if __name__ == "__main__":
    main()
