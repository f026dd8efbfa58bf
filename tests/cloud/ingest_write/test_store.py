"""The store on SQLite and PostgreSQL: one transaction per work, every event once, what to ack."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from edge_cloud.common.db import make_engine
from edge_cloud.ingest.store import DeviceAck, Outcome, StatusMessage, Store, Work
from tests.cloud.ingest_write.helpers import EPOCH, Device, count, work


def rows(engine: Engine, sql: str) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql))]


def test_every_kind_goes_to_its_table_once_with_its_fields(engine: Engine) -> None:
    store = Store(engine, quarantine_rows=100)
    dev = Device("site-9")
    events = [
        dev.event(data={"temperature_c": 19.5, "pressure_pa": 101211.4, "cal": {"temperature_c": 12}}),
        dev.event(
            "test_result",
            {
                "test": "range",
                "sensor": "climate",
                "kind": "range",
                "status": "fail",
                "passed": False,
                "measured": {},
                "limits": {},
                "duration_s": 0.1,
                "detail": "too hot",
                "trigger": "schedule",
            },
        ),
        dev.event(
            "alarm",
            {
                "code": "sensor_test_failed",
                "test": "range",
                "sensor": "climate",
                "kind": "range",
                "detail": "too hot",
            },
        ),
        dev.event(
            "status",
            {
                "event": "sensor_health",
                "state": "degraded",
                "previous": "ok",
                "reason": "timeout",
                "consecutive_errors": 3,
            },
        ),
        dev.event("gap", {"reason": "size_cap", "evicted": [[100, 149], [200, 209]], "count": 60}),
    ]
    outcome = store.write(work(dev.message(events)))
    assert (outcome.stored, outcome.duplicates, outcome.refused_events) == (5, 0, ())
    assert outcome.acks == (DeviceAck("site-9", EPOCH, ((1, 5),)),)
    assert sorted(
        rows(
            engine,
            "SELECT s.quantity, r.value, r.cal, r.clock_synced FROM readings r JOIN series s USING (series_id)",
        )
    ) == [
        ("pressure_pa", 101211.4, None, True),
        ("temperature_c", 19.5, 12, True),
    ]
    assert rows(engine, "SELECT test, kind, status, trigger, detail FROM test_results") == [
        ("range", "range", "fail", "schedule", "too hot")
    ]
    assert rows(engine, "SELECT code, sensor FROM alarms") == [("sensor_test_failed", "climate")]
    assert rows(engine, "SELECT event, sensor FROM status_events") == [("sensor_health", "climate")]
    assert rows(engine, "SELECT epoch, first_seq, last_seq, reason FROM gaps ORDER BY first_seq") == [
        (EPOCH, 100, 149, "size_cap"),
        (EPOCH, 200, 209, "size_cap"),
    ]
    assert rows(engine, "SELECT evicted_events FROM devices") == [(60,)]
    assert rows(engine, "SELECT kind, seq FROM event_ids ORDER BY seq") == [
        ("reading", 1),
        ("test_result", 2),
        ("alarm", 3),
        ("status", 4),
        ("gap", 5),
    ]
    # All again, in one work twice over: nothing new, the gap not counted again.
    again = store.write(work(dev.message(events), dev.message(events)))
    assert (again.stored, again.duplicates) == (0, 10)
    assert again.acks == outcome.acks
    assert count(engine, "readings") == 2 and count(engine, "gaps") == 2
    assert rows(engine, "SELECT evicted_events FROM devices") == [(60,)]


def test_received_ranges_merge_across_batches_and_epochs(engine: Engine) -> None:
    store = Store(engine, quarantine_rows=100)
    dev = Device("site-3")
    events = dev.readings(30)
    for part in (events[20:25], events[0:5], events[10:15], events[5:10]):  # out of order, like lanes
        store.write(work(dev.message(part)))
    assert rows(engine, "SELECT first_seq, last_seq FROM received_ranges ORDER BY first_seq") == [
        (1, 15),
        (21, 25),
    ]
    store.write(work(dev.message(events[14:21])))
    other = Device("site-3", epoch="another-epoch")
    store.write(work(dev.message(events[25:]), other.message(other.readings(3))))
    assert rows(engine, "SELECT epoch, first_seq, last_seq FROM received_ranges ORDER BY epoch") == [
        (EPOCH, 1, 30),
        ("another-epoch", 1, 3),
    ]


def test_an_unsynced_clock_in_1970_and_one_far_ahead_are_stored(engine: Engine) -> None:
    store = Store(engine, quarantine_rows=100)
    dev = Device("rtc-less", t=datetime(1970, 1, 1, 0, 0, 5, tzinfo=UTC))
    early = dev.event()
    early["clock"] = "unsynced"
    dev.t = datetime(2099, 1, 1, tzinfo=UTC)
    late = dev.event()
    assert store.write(work(dev.message([early, late]))).stored == 2
    assert count(engine, "readings") == 4
    assert rows(
        engine,
        "SELECT min(e.seq), max(e.seq) FROM readings r JOIN event_ids e ON e.id = r.event_id WHERE r.clock_synced = false",
    ) == [(1, 1)]


def test_statuses_move_online_and_status_at_only_on_a_change(engine: Engine) -> None:
    store = Store(engine, quarantine_rows=100)
    t0 = datetime(2026, 11, 25, 12, tzinfo=UTC)

    def status(
        online: bool,
        at: datetime,
        *,
        ts: datetime | None = None,
        boot: str | None = "b1",
        retained: bool = False,
    ) -> StatusMessage:
        return StatusMessage("dev-s", online, ts, boot, "e1", at, retained)

    store.write(Work(statuses=[status(True, t0, ts=t0 - timedelta(seconds=1))]))
    store.write(Work(statuses=[status(True, t0 + timedelta(hours=1), retained=True)]))  # the same, again
    got = device_row(engine)
    assert got.online is True and _utc(got.status_at) == t0 - timedelta(seconds=1)
    assert _utc(got.last_seen) == t0, "a retained status says nothing about when the device was last heard"
    store.write(Work(statuses=[status(False, t0 + timedelta(hours=2), boot=None)]))  # a will: no ts
    got = device_row(engine)
    assert got.online is False and _utc(got.status_at) == t0 + timedelta(hours=2) and got.boot == "b1"


def test_the_backlog_a_birth_reports_is_kept_until_the_next_report(engine: Engine) -> None:
    store = Store(engine, quarantine_rows=100)
    t0 = datetime(2026, 11, 25, 12, tzinfo=UTC)
    birth = StatusMessage("dev-s", True, t0, "b1", "e1", t0, False, pending=1234)
    store.write(Work(statuses=[birth]))
    assert device_row(engine).pending_events == 1234
    will = StatusMessage("dev-s", False, None, "b1", "e1", t0 + timedelta(hours=1), False)  # no pending
    store.write(Work(statuses=[will]))
    assert device_row(engine).pending_events == 1234
    clean = StatusMessage("dev-s", False, t0, "b1", "e1", t0 + timedelta(hours=2), False, pending=0)
    store.write(Work(statuses=[clean]))
    assert device_row(engine).pending_events == 0


def device_row(engine: Engine) -> sa.Row[tuple[object, ...]]:
    from edge_cloud.ingest.tables import devices

    with engine.connect() as conn:
        return conn.execute(sa.select(devices)).one()


def _utc(value: object) -> datetime:
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def test_quarantine_keeps_the_newest_rows(engine: Engine) -> None:
    from edge_cloud.ingest.store import Refusal

    store = Store(engine, quarantine_rows=10)
    at = datetime.now(UTC)
    for i in range(25):
        store.write(Work(refusals=[Refusal("malformed", f"n{i}", "devices/x/events", "x", 3, b"abc", at)]))
    assert [r[0] for r in rows(engine, "SELECT detail FROM quarantine ORDER BY id")] == [
        f"n{i}" for i in range(15, 25)
    ]


def race(engine: Engine, database_url: str, rounds: list[tuple[Work, Work]]) -> list[list[Outcome]]:
    """Two stores, each on its own connection (two ingest processes), writing each round's
    pair of works at the same moment; their outcomes."""
    engines = [engine, make_engine(database_url)]
    stores = [Store(e, quarantine_rows=100) for e in engines]
    outcomes: list[list[Outcome]] = [[], []]
    errors: list[BaseException] = []

    def write(i: int, w: Work, barrier: threading.Barrier) -> None:
        try:
            barrier.wait(10)
            outcomes[i].append(stores[i].write(w))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    try:
        for works in rounds:
            barrier = threading.Barrier(2)
            threads = [threading.Thread(target=write, args=(i, works[i], barrier)) for i in (0, 1)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
    finally:
        engines[1].dispose()
    assert not errors, errors
    return outcomes


def test_two_writers_storing_the_same_events_at_once_store_them_once_and_both_ack_them(
    database_url: str, engine: Engine
) -> None:
    """The race of two ingest processes given the same events (a resend reaching the other
    member of the shared subscription): each has its own connection; whichever inserts a
    key first stores it, the other finds it and acknowledges it once that one committed."""
    devices = [Device(f"race-{i}") for i in range(3)]
    rounds = []
    for _ in range(10):
        messages = [d.message(d.readings(200)) for d in devices]
        # The second writer lists the devices in the other order.
        rounds.append((work(*messages), work(*reversed(messages))))
    outcomes = race(engine, database_url, rounds)
    total = 10 * 3 * 200
    stored = sum(o.stored for side in outcomes for o in side)
    duplicates = sum(o.duplicates for side in outcomes for o in side)
    assert (stored, duplicates) == (total, total), "each event stored by exactly one of the two"
    assert count(engine, "event_ids") == total and count(engine, "readings") == 2 * total
    everything = {(d.device_id, s) for d in devices for s in range(1, 2001)}
    for side in outcomes:
        acked = {
            (a.device_id, s)
            for o in side
            for a in o.acks
            for first, last in a.seqs
            for s in range(first, last + 1)
        }
        assert acked == everything
    assert rows(engine, "SELECT device_id, first_seq, last_seq FROM received_ranges ORDER BY device_id") == [
        (d.device_id, 1, 2000) for d in devices
    ]


def test_two_writers_creating_the_same_series_at_once_both_use_its_one_id(
    database_url: str, engine: Engine
) -> None:
    """Two ingest processes storing different events of the same new series at once (a
    device's messages split by the shared subscription): one series row, every reading
    pointing at it."""
    devices = [Device(f"series-{i}") for i in range(3)]
    rounds = []
    for n in range(5):  # new quantity names each round: new series for both writers
        data = {f"q{n}_a": 1.0, f"q{n}_b": 2.0}
        halves = [[d.message([d.event(data=data) for _ in range(20)]) for d in devices] for _ in (0, 1)]
        rounds.append((work(*halves[0]), work(*reversed(halves[1]))))
    race(engine, database_url, rounds)
    assert count(engine, "series") == 3 * 5 * 2
    per_series = rows(
        engine,
        "SELECT s.device_id, s.quantity, count(*) FROM readings r JOIN series s USING (series_id) "
        "GROUP BY s.device_id, s.quantity ORDER BY s.device_id, s.quantity",
    )
    assert per_series == [(d.device_id, f"q{n}_{x}", 40) for d in devices for n in range(5) for x in "ab"]


def test_a_series_made_in_a_rolled_back_transaction_is_not_remembered(postgres_url: str) -> None:
    """PostgreSQL: the id a rolled-back insert took is gone for good (the identity moves on);
    the next transaction must make the series again, not reuse the id it saw."""
    from edge_cloud.ingest.errors import StoreRejected
    from edge_cloud.ingest.store import Refusal
    from tests.cloud.ingest_write.helpers import migrated

    with migrated(postgres_url) as pg:
        store = Store(pg, quarantine_rows=10)
        dev = Device("rolled-back")
        message = dev.message(dev.readings(2))
        # A quarantine row the database refuses (reason is VARCHAR(32)), written after the readings.
        bad = Refusal("x" * 40, "d", "devices/x/events", "x", 1, b"a", datetime.now(UTC))  # type: ignore[arg-type]
        try:
            store.write(Work(events=[message], refusals=[bad]))
        except StoreRejected:
            pass
        else:  # pragma: no cover - the point of the test
            raise AssertionError("the transaction should have been refused")
        assert count(pg, "series") == 0 and count(pg, "readings") == 0
        assert store.write(work(message)).stored == 2
        assert count(pg, "readings", "WHERE series_id IN (SELECT series_id FROM series)") == 4


def test_a_batch_mixing_stored_and_new_events_after_a_clean_one_stores_only_the_new(engine: Engine) -> None:
    """PostgreSQL tries a clean batch's successor as a bare COPY into the ledger first: a
    duplicate in it (here the last events) must roll that back and store the rest once."""
    store = Store(engine, quarantine_rows=100)
    dev = Device("mixed")
    first = dev.readings(30)
    assert store.write(work(dev.message(first))).stored == 30
    second = dev.readings(20)
    outcome = store.write(work(dev.message(second + first[-5:])))
    assert (outcome.stored, outcome.duplicates) == (20, 5)
    third = dev.readings(10)
    assert (store.write(work(dev.message(third))).stored, count(engine, "event_ids")) == (10, 60)
    assert count(engine, "readings") == 2 * 60


def test_a_not_committed_gap_counts_dropped_events_not_evicted_ones(engine: Engine) -> None:
    """Events the device never committed have no seqs: the gap carries a count only."""
    store = Store(engine, quarantine_rows=100)
    dev = Device("site-7")
    data = {
        "reason": "not_committed",
        "evicted": [],
        "count": 73,
        "dropped": {"outbox_busy": 73},
        "first_ts": "2026-12-06T10:00:00.000Z",
        "last_ts": "2026-12-06T10:02:30.000Z",
    }
    events = [
        dev.event("gap", data),
        dev.event("gap", {"reason": "size_cap", "evicted": [[1, 4]], "count": 4}),
    ]
    outcome = store.write(work(dev.message(events)))
    assert (outcome.stored, outcome.refused_events) == (2, ())
    assert rows(engine, "SELECT evicted_events, dropped_events FROM devices") == [(4, 73)]
    assert rows(engine, "SELECT first_seq, last_seq, reason FROM gaps") == [(1, 4, "size_cap")]
    again = store.write(work(dev.message(events)))
    assert again.duplicates == 2
    assert rows(engine, "SELECT evicted_events, dropped_events FROM devices") == [(4, 73)]
