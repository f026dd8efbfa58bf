"""The Alembic migrations make exactly the schema ``edge_cloud.ingest.tables`` declares;
on PostgreSQL ``readings`` is range-partitioned by ``ts`` with a default partition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from edge_cloud.common.db import make_engine
from edge_cloud.ingest import migrate, partitions
from edge_cloud.ingest.tables import TS, metadata


def test_migrated_schema_matches_the_tables_and_upgrade_is_idempotent(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate.upgrade(engine)
        migrate.upgrade(engine)  # every start runs it
        partitions.maintain(engine, interval="week", retention_s=None)  # partitions are not tables.py's
        assert migrate.current_revision(engine) == "0003"
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_name": migrate.include_name})
            diff = compare_metadata(context, metadata)
            assert diff == []
            if engine.dialect.name == "postgresql":
                kind = conn.execute(sa.text("SELECT relkind FROM pg_class WHERE relname = 'readings'"))
                assert kind.scalar_one() == "p", "readings is a partitioned table"
                key = conn.execute(sa.text("SELECT pg_get_partkeydef('readings'::regclass)")).scalar_one()
                assert key == "RANGE (ts)"
    finally:
        engine.dispose()


def test_upgrade_to_series_keeps_the_readings_and_their_partitions(database_url: str) -> None:
    """0001 → 0002 with data: each reading keeps its values and finds its epoch and seq in
    the ledger; on PostgreSQL the partitions keep their names and bounds, the default
    partition its rows.  The downgrade brings the old shape back with the same rows."""
    from alembic import command
    from alembic.config import Config

    from edge_cloud.ingest.queries.readings import list_readings

    engine = make_engine(database_url)
    postgres = engine.dialect.name == "postgresql"
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    old = [  # device, sensor, quantity, ts, value, event_id, epoch, seq, clock_synced, cal
        ("dev-a", "climate", "temperature_c", now, 19.5, "e1", "ep", 1, True, 12),
        ("dev-a", "climate", "pressure_pa", now, 101211.4, "e1", "ep", 1, True, None),
        ("dev-a", "power", "voltage_v", now + timedelta(seconds=1), 230.0, "e2", "ep", 2, True, None),
        (
            "dev-b",
            "climate",
            "temperature_c",
            datetime(1970, 1, 1, tzinfo=UTC),
            3.0,
            "e3",
            "ep2",
            7,
            False,
            None,
        ),
    ]

    def partition_rows() -> list[tuple[str, int]]:
        with engine.connect() as conn:
            return [
                (p.name, int(conn.execute(sa.text(f'SELECT count(*) FROM "{p.name}"')).scalar_one()))
                for p in partitions.partitions(conn)
            ] + [
                (
                    partitions.DEFAULT,
                    int(conn.execute(sa.text("SELECT count(*) FROM readings_default")).scalar_one()),
                )
            ]

    try:
        migrate.upgrade(engine, "0001")
        if postgres:
            partitions.maintain(engine, interval="week", retention_s=None, now=now)
        with engine.begin() as conn:
            for d, _s, _q, ts, _v, e, ep, seq, _c, _cal in old:
                conn.execute(
                    sa.text(
                        "INSERT INTO event_ids (device_id, id, epoch, seq, kind, received_at) "
                        "VALUES (:d, :e, :ep, :seq, 'reading', :ts) ON CONFLICT DO NOTHING"
                    ).bindparams(sa.bindparam("ts", type_=TS)),
                    {"d": d, "e": e, "ep": ep, "seq": seq, "ts": ts},
                )
            conn.execute(
                sa.text(
                    "INSERT INTO readings (device_id, sensor, quantity, ts, value, event_id, epoch, seq, "
                    "clock_synced, cal) VALUES (:d, :s, :q, :ts, :v, :e, :ep, :seq, :c, :cal)"
                ).bindparams(sa.bindparam("ts", type_=TS)),
                [
                    dict(zip(("d", "s", "q", "ts", "v", "e", "ep", "seq", "c", "cal"), r, strict=True))
                    for r in old
                ],
            )
        before = partition_rows() if postgres else []
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == "0003"
        if postgres:
            assert partition_rows() == before and ("readings_default", 1) in before
        with engine.connect() as conn:
            got = {
                d: [
                    (r.sensor, r.quantity, r.ts, r.value, r.event_id, r.epoch, r.seq, r.clock_synced, r.cal)
                    for r in list_readings(conn, d, limit=10)
                ]
                for d in ("dev-a", "dev-b")
            }
            assert got == {
                d: sorted(
                    [
                        (s, q, ts, v, e, ep, seq, c, cal)
                        for dd, s, q, ts, v, e, ep, seq, c, cal in old
                        if dd == d
                    ],
                    key=lambda r: (r[2], r[4], r[0], r[1]),
                )
                for d in ("dev-a", "dev-b")
            }
            context = MigrationContext.configure(conn, opts={"include_name": migrate.include_name})
            assert compare_metadata(context, metadata) == []
        config = Config()
        config.set_main_option("script_location", str(migrate.MIGRATIONS))
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0001")
        with engine.connect() as conn:
            back = conn.execute(
                sa.text(
                    "SELECT device_id, sensor, quantity, value, event_id, epoch, seq, clock_synced, cal "
                    "FROM readings ORDER BY device_id, event_id, quantity"
                )
            ).all()
        assert [tuple(r) for r in back] == sorted(
            [(d, s, q, v, e, ep, seq, c, cal) for d, s, q, _ts, v, e, ep, seq, c, cal in old],
            key=lambda r: (r[0], r[4], r[2]),
        )
        if postgres:
            assert partition_rows() == before
    finally:
        engine.dispose()


def test_partition_plan_fills_only_what_is_uncovered() -> None:
    d = lambda day: datetime(2026, 11, day, tzinfo=UTC)  # noqa: E731
    assert partitions.uncovered([], (d(1), d(8))) == [(d(1), d(8))]
    assert partitions.uncovered([(d(1), d(8))], (d(2), d(3))) == []
    assert partitions.uncovered([(d(3), d(5))], (d(1), d(8))) == [(d(1), d(3)), (d(5), d(8))]
    weeks = partitions.wanted(datetime(2026, 11, 25, 13, tzinfo=UTC), "week")
    assert weeks[0] == (d(16), d(23)) and weeks[1] == (d(23), d(30)) and len(weeks) == 2 + partitions.AHEAD
    months = partitions.wanted(datetime(2026, 1, 10, tzinfo=UTC), "month")
    assert months[0][0] == datetime(2025, 12, 1, tzinfo=UTC) and months[1][1] == datetime(
        2026, 2, 1, tzinfo=UTC
    )
    assert partitions.next_start(d(1) + timedelta(0), "day") == d(2)


def test_postgres_partitions_are_made_ahead_rows_move_out_of_default_and_retention_drops(
    postgres_url: str,
) -> None:
    from edge_cloud.ingest.store import Store
    from tests.cloud.ingest_write.helpers import Device, work

    engine = make_engine(postgres_url)
    try:
        migrate.upgrade(engine)
        now = datetime(2026, 11, 25, 12, tzinfo=UTC)
        made = partitions.maintain(engine, interval="week", retention_s=None, now=now)
        assert made.created == [
            "readings_p20261116",
            "readings_p20261123",
            "readings_p20261130",
            "readings_p20261207",
        ]
        assert partitions.maintain(engine, interval="week", retention_s=None, now=now).created == []
        dev = Device("part-1", t=datetime(1970, 1, 1, tzinfo=UTC))
        old = dev.readings(2)  # an unsynced clock
        dev.t = datetime(2026, 11, 25, 12, tzinfo=UTC)
        current = dev.readings(3)
        dev.t = datetime(2027, 3, 1, tzinfo=UTC)
        ahead = dev.readings(1)  # no partition yet: the default one
        Store(engine, quarantine_rows=10).write(work(dev.message(old + current + ahead)))

        def where(name: str) -> int:
            with engine.connect() as conn:
                return int(conn.execute(sa.text(f'SELECT count(*) FROM "{name}"')).scalar_one())

        assert (where("readings_default"), where("readings_p20261123")) == (6, 6)
        # Time passes: the partition for March 2027 is made, and its row moves out of default.
        later = datetime(2027, 3, 2, tzinfo=UTC)
        made = partitions.maintain(engine, interval="week", retention_s=30 * 86400, now=later)
        assert "readings_p20270301" in made.created and made.moved == 2
        assert where("readings_p20270301") == 2 and where("readings_default") == 4
        assert made.dropped == [
            "readings_p20261116",
            "readings_p20261123",
            "readings_p20261130",
            "readings_p20261207",
        ]
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM readings")).scalar_one() == 6
        # A change of interval never overlaps what exists.
        assert partitions.maintain(engine, interval="day", retention_s=None, now=later).created == []
        made = partitions.maintain(engine, interval="month", retention_s=None, now=later)
        assert made.created == [
            "readings_p20270201",  # up to the week partition of 2027-02-22
            "readings_p20270322",  # after the weeks made ahead
            "readings_p20270401",
            "readings_p20270501",
        ]
    finally:
        engine.dispose()
