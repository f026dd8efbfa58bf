"""``GET /v1/devices/{id}/readings``: keyset paging on ``(ts, event_id, sensor, quantity)``
in both orders over one and several series (ties on ``ts`` across events and sensors
included), the window's bounds, ``every`` buckets against the same arithmetic in Python,
refusals (bad parameters, too many buckets, cursors of other queries or tampered with)
and the scope.  Seeded through ``Store.write``, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.cloud.ingest_api.fleet_helpers import Fleet, fleet
from tests.cloud.ingest_write.helpers import T0, Device

PATH = "/v1/devices/site-a/readings"
EVENTS = 60
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Row:
    ts: datetime
    event_id: str
    sensor: str
    quantity: str
    value: float
    seq: int
    clock_synced: bool
    cal: int | None

    @property
    def key(self) -> tuple[datetime, str, str, str]:
        return (self.ts, self.event_id, self.sensor, self.quantity)


def _data(n: int, sensor: str) -> dict[str, Any]:
    if sensor == "climate":
        data: dict[str, Any] = {"temperature_c": 20 + ((n * 7) % 11) / 3, "pressure_pa": 101000 + n * 1.5}
        if n % 4 == 1:
            data["cal"] = {"temperature_c": 7}
        return data
    return {"voltage_v": 12 + n / 10, "current_a": -0.5 + (n % 5) / 7}


def _rows(events: list[dict[str, Any]]) -> list[Row]:
    out = []
    for e in events:
        cal = e["data"].get("cal", {})
        for quantity, value in e["data"].items():
            if quantity != "cal":
                out.append(
                    Row(
                        ts=datetime.fromisoformat(e["ts"]),
                        event_id=e["id"],
                        sensor=e["sensor"],
                        quantity=quantity,
                        value=value,
                        seq=e["seq"],
                        clock_synced=e["clock"] == "synced",
                        cal=cal.get(quantity),
                    )
                )
    return out


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[tuple[Fleet, list[Row]]]:
    with fleet(database_url, tmp_path) as f:
        d = Device("site-a")
        made = []
        for n in range(EVENTS):
            sensor = "power" if n % 3 == 2 else "climate"
            if n % 4 == 3:
                d.t = datetime.fromisoformat(made[-1]["ts"]) - timedelta(seconds=1)  # a tie on ts
            else:
                d.t += timedelta(milliseconds=(n * 137) % 1000)  # times off the whole second
            event = d.event("reading", _data(n, sensor), sensor=sensor)
            if n % 7 == 0:
                event["clock"] = "unsynced"
            made.append(event)
        f.events(d, made)
        other = Device("site-b")
        f.events(other, other.readings(10))  # another device's rows: never in site-a's answers
        yield f, _rows(made)


def keys(rows: list[Row], keep: Callable[[Row], bool] = lambda r: True, *, desc: bool = False) -> list[Any]:
    return sorted((r.key for r in rows if keep(r)), reverse=desc)


def walked(f: Fleet, **params: Any) -> list[Any]:
    pages = f.walk(PATH, "readings", **params)
    return [
        (datetime.fromisoformat(r["ts"]), r["event_id"], r["sensor"], r["quantity"]) for p in pages for r in p
    ]


def iso(ts: datetime) -> str:
    return ts.isoformat()


def test_pages_hold_every_row_once_in_order_both_ways(world: tuple[Fleet, list[Row]]) -> None:
    f, rows = world
    assert len({r.ts for r in rows}) < EVENTS  # there are ties on ts, across sensors too
    filters: list[tuple[dict[str, str], Callable[[Row], bool]]] = [
        ({}, lambda r: True),
        ({"sensor": "climate"}, lambda r: r.sensor == "climate"),
        ({"quantity": "voltage_v"}, lambda r: r.quantity == "voltage_v"),
        ({"sensor": "climate", "quantity": "temperature_c"}, lambda r: r.quantity == "temperature_c"),
    ]
    for params, keep in filters:
        for order in ("asc", "desc"):
            expected = keys(rows, keep, desc=order == "desc")
            for limit in (1, 7, 1000):
                got = walked(f, limit=limit, order=order, **params)
                assert got == expected, (params, order, limit)
    assert walked(f) == keys(rows)  # oldest first by default
    assert walked(f, sensor="climate", quantity="humidity") == []
    assert walked(f, sensor="gps") == []


def test_a_reading_is_shown_as_stored(world: tuple[Fleet, list[Row]]) -> None:
    f, rows = world
    body = f.ok(PATH, limit=10_000)
    assert body["every_s"] is None and body["buckets"] == [] and body["next_cursor"] is None
    shown = {(r["event_id"], r["quantity"]): r for r in body["readings"]}
    assert len(shown) == len(rows)
    for row in rows:
        r = shown[(row.event_id, row.quantity)]
        assert r["value"] == row.value  # the float as stored, not rounded
        assert datetime.fromisoformat(r["ts"]) == row.ts
        assert r["ts"].endswith("Z")
        assert (r["sensor"], r["seq"], r["clock_synced"], r["cal"]) == (
            row.sensor,
            row.seq,
            row.clock_synced,
            row.cal,
        )
    assert any(r["cal"] == 7 for r in body["readings"])
    assert any(not r["clock_synced"] for r in body["readings"])


def test_since_is_inclusive_until_exclusive_in_any_zone(world: tuple[Fleet, list[Row]]) -> None:
    f, rows = world
    times = sorted({r.ts for r in rows})
    since, until = times[10], times[30]

    def inside(r: Row) -> bool:
        return since <= r.ts < until

    for order in ("asc", "desc"):
        got = walked(f, since=iso(since), until=iso(until), limit=4, order=order)
        assert got == keys(rows, inside, desc=order == "desc")
    assert got[-1][0] == since and all(k[0] != until for k in got)
    shifted = since.astimezone(timezone(timedelta(hours=-7, minutes=-30))).isoformat()
    assert walked(f, since=shifted, until=iso(until), sensor="power") == keys(
        rows, lambda r: inside(r) and r.sensor == "power"
    )
    assert walked(f, since=iso(since)) == keys(rows, lambda r: r.ts >= since)
    assert walked(f, until=iso(until)) == keys(rows, lambda r: r.ts < until)
    # Empty windows: before the first reading, between two readings, after the last.
    assert f.ok(PATH, until=iso(times[0]))["readings"] == []
    gap = times[5] + timedelta(microseconds=1)
    assert f.ok(PATH, since=iso(gap), until=iso(gap + timedelta(microseconds=10)))["readings"] == []
    assert f.ok(PATH, since=iso(times[-1] + timedelta(microseconds=1)))["readings"] == []


def python_buckets(
    rows: list[Row], since: datetime, until: datetime, every: timedelta, keep: Callable[[Row], bool]
) -> list[tuple[datetime, str, str, int, float, float, float]]:
    """The buckets the API should answer, computed here from the rows sent (aligned on
    the Unix epoch: ``1h`` buckets on the hour, whatever ``since`` is)."""
    groups: dict[tuple[datetime, str, str], list[float]] = defaultdict(list)
    for r in rows:
        if since <= r.ts < until and keep(r):
            start = EPOCH + every * ((r.ts - EPOCH) // every)
            groups[(start, r.sensor, r.quantity)].append(r.value)
    return [
        (start, sensor, quantity, len(v), min(v), sum(v) / len(v), max(v))
        for (start, sensor, quantity), v in sorted(groups.items())
    ]


def test_buckets_are_aligned_on_the_clock_not_on_since(world: tuple[Fleet, list[Row]]) -> None:
    f, rows = world
    first = min(r.ts for r in rows)
    since = first.replace(minute=17, second=3, microsecond=250000) - timedelta(hours=1)
    until = since + timedelta(hours=3)
    hourly = f.ok(PATH, every="1h", since=iso(since), until=iso(until))["buckets"]
    starts = sorted({datetime.fromisoformat(b["start"]) for b in hourly})
    assert starts and all(s.minute == s.second == s.microsecond == 0 for s in starts)
    assert starts[0] <= min(r.ts for r in rows if r.ts >= since) < starts[0] + timedelta(hours=1)
    # The first bucket starts before since but counts only the rows from since on.
    assert sum(b["count"] for b in hourly) == sum(1 for r in rows if since <= r.ts < until)
    daily = f.ok(PATH, every="1d", since=iso(since), until=iso(until))["buckets"]
    midnight = since.replace(hour=0, minute=0, second=0, microsecond=0)
    assert {datetime.fromisoformat(b["start"]) for b in daily} == {midnight}
    # Another since in the same hour gives the same bucket starts: a chart's edges stay put.
    later = f.ok(PATH, every="1h", since=iso(since + timedelta(minutes=20)), until=iso(until))["buckets"]
    assert {b["start"] for b in later} <= {b["start"] for b in hourly}


def walked_buckets(f: Fleet, **params: Any) -> list[tuple[datetime, str, str, int, float, float, float]]:
    out = []
    for page in f.walk(PATH, "buckets", **params):
        for b in page:
            out.append(
                (
                    datetime.fromisoformat(b["start"]),
                    b["sensor"],
                    b["quantity"],
                    b["count"],
                    b["min"],
                    b["mean"],
                    b["max"],
                )
            )
    return out


def same_buckets(got: list[Any], expected: list[Any]) -> None:
    assert [b[:5] + b[6:] for b in got] == [b[:5] + b[6:] for b in expected]
    # The mean is summed in another order by the database: equal but for the last bits.
    assert [b[5] for b in got] == pytest.approx([b[5] for b in expected], rel=1e-12)


def test_buckets_match_the_arithmetic_done_in_python(world: tuple[Fleet, list[Row]]) -> None:
    f, rows = world
    first = min(r.ts for r in rows)
    # An origin off the whole second, so bucket edges fall between readings' milliseconds.
    since = first - timedelta(milliseconds=250)
    until = first + timedelta(seconds=70)
    cases: list[tuple[str, timedelta, dict[str, str], Callable[[Row], bool]]] = [
        ("7s", timedelta(seconds=7), {}, lambda r: True),
        ("1m", timedelta(minutes=1), {}, lambda r: True),
        ("3s", timedelta(seconds=3), {"sensor": "climate"}, lambda r: r.sensor == "climate"),
        ("10s", timedelta(seconds=10), {"quantity": "current_a"}, lambda r: r.quantity == "current_a"),
        ("1d", timedelta(days=1), {}, lambda r: True),
    ]
    for every, step, params, keep in cases:
        expected = python_buckets(rows, since, until, step, keep)
        assert sum(b[3] for b in expected) == sum(1 for r in rows if since <= r.ts < until and keep(r))
        for order in ("asc", "desc"):
            for limit in (1, 4, 1000):
                got = walked_buckets(
                    f, every=every, since=iso(since), until=iso(until), limit=limit, order=order, **params
                )
                same_buckets(got, expected[::-1] if order == "desc" else expected)
        body = f.ok(PATH, every=every, since=iso(since), until=iso(until), **params)
        assert body["every_s"] == step.total_seconds() and body["readings"] == []
    # A bucket edge exactly on a reading's time: the reading opens the next bucket.
    d = Device("site-edge")
    d.t = T0 - timedelta(seconds=1, milliseconds=500)
    before = d.event()  # 12:59:59.500
    d.t = T0 - timedelta(seconds=1)
    on_edge = d.event()  # 13:00:00.000, a 5 s bucket's start
    f.events(d, [before, on_edge])
    window = {"since": iso(T0 - timedelta(seconds=3)), "until": iso(T0 + timedelta(seconds=3))}
    got = f.ok("/v1/devices/site-edge/readings", every="5s", quantity="temperature_c", **window)
    assert [(datetime.fromisoformat(b["start"]), b["count"]) for b in got["buckets"]] == [
        (T0 - timedelta(seconds=5), 1),
        (T0, 1),
    ]
    # A window with no readings: no buckets (empty ones are not listed).
    late = max(r.ts for r in rows) + timedelta(hours=1)
    assert f.ok(PATH, every="1h", since=iso(late), until=iso(late + timedelta(days=1)))["buckets"] == []


def test_bad_parameters_are_refused_never_a_server_error(world: tuple[Fleet, list[Row]]) -> None:
    f, rows = world
    ts = iso(rows[5].ts)
    day = {"since": "2026-11-25T00:00:00Z", "until": "2026-11-26T00:00:00Z"}

    def refused(status: int, text: str | None = None, path: str = PATH, **params: Any) -> None:
        r = f.get(path, **params)
        assert r.status_code == status, (params, r.text)
        if text is not None:
            assert text in r.text, r.text

    refused(422, "until", since=ts, until=ts)
    refused(422, "until", since=iso(rows[-1].ts), until=ts)
    refused(422, "since", since="2026-11-25T13:00:00")  # no zone
    refused(422, "until", until="2026-11-25T13:00:00")
    refused(422, until="9999-12-31T23:00:00-05:00")  # no UTC equivalent
    # Numbers are no times here: pydantic would read them as Unix seconds (until=0: 1970,
    # since=20261125: August 1970) and answer 200 with the wrong window.
    for number in ("0", "-1", "20261125", "1764028800"):
        refused(422, "RFC 3339", until=number)
        refused(422, "RFC 3339", since=number)
    refused(422, sensor="Bad Sensor")
    refused(422, quantity="a\x00b")
    refused(422, limit=0)
    refused(422, limit=10_001)
    refused(422, order="sideways")
    for every in ("0s", "1w", "1.5h", "h", "-1m", "30", "1000000000s"):
        refused(422, "every", every=every, **day)
    refused(422, "366d", every="367d", **day)
    refused(422, "since", every="1h", until=day["until"])
    refused(422, "until", every="1h", since=day["since"])
    refused(422, "since", every="1h")
    # 1 s over two days is 172,800 buckets: too many; 2 s is 86,400: fine.
    two_days = {"since": day["since"], "until": "2026-11-27T00:00:00Z"}
    refused(422, "172,800 buckets", every="1s", **two_days)
    refused(200, every="2s", **two_days)
    refused(200, every="366d", since="2000-01-01T00:00:00Z", until="9999-12-31T00:00:00Z")
    refused(404, "never seen", path="/v1/devices/site-z/readings")
    refused(404, path="/v1/devices/site-z/readings", every="1h", **day)


def _tampered(cursor: str, change: Callable[[list[Any]], None]) -> str:
    value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    change(value)
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def test_a_cursor_only_continues_the_query_it_came_from(world: tuple[Fleet, list[Row]]) -> None:
    f, rows = world
    cursor = f.ok(PATH, limit=3, sensor="climate")["next_cursor"]
    assert f.get(PATH, limit=3, sensor="climate", cursor=cursor).status_code == 200
    assert f.get(PATH, limit=50, sensor="climate", cursor=cursor).status_code == 200  # another page size
    for other in (
        {},
        {"sensor": "power"},
        {"sensor": "climate", "order": "desc"},
        {"sensor": "climate", "quantity": "pressure_pa"},
    ):
        assert f.get(PATH, cursor=cursor, **other).status_code == 400, other
    assert f.get(PATH, cursor=cursor, sensor="climate", since=iso(rows[0].ts)).status_code == 400
    assert f.get("/v1/devices/site-b/readings", cursor=cursor, sensor="climate").status_code == 400
    assert f.get("/v1/devices/site-a/test-results", cursor=cursor).status_code == 400
    day = {"since": "2026-11-25T00:00:00Z", "until": "2026-11-26T00:00:00Z"}
    bucket_cursor = f.ok(PATH, limit=1, every="1m", **day)["next_cursor"]
    assert f.get(PATH, cursor=bucket_cursor, every="1m", **day).status_code == 200
    assert f.get(PATH, cursor=bucket_cursor, every="5m", **day).status_code == 400
    assert f.get(PATH, cursor=bucket_cursor, **day).status_code == 400
    assert f.get(PATH, cursor=cursor, every="1m", **day).status_code == 400
    # Hand-edited cursors, with the listing name they must carry: refused, never a 500.
    edits: list[Callable[[list[Any]], None]] = [
        lambda v: v.__setitem__(1, "not a time"),
        lambda v: v.__setitem__(1, "2026-11-25T13:00:00"),  # no zone
        lambda v: v.__setitem__(1, "0001-01-01T00:00:00+05:00"),  # no UTC equivalent
        lambda v: v.__setitem__(2, 12),
        lambda v: v.__setitem__(2, "a\x00b"),
        lambda v: v.append("x"),
    ]
    for edit in edits:
        assert f.get(PATH, cursor=_tampered(cursor, edit), sensor="climate").status_code == 400
    for edit in [
        *edits[:3],
        lambda v: v.__setitem__(1, "2026-11-25T00:00:30+00:00"),  # not a bucket start
        lambda v: v.__setitem__(1, "2026-11-26T00:00:00+00:00"),  # past until
    ]:
        assert f.get(PATH, cursor=_tampered(bucket_cursor, edit), every="1m", **day).status_code == 400
    moved = _tampered(cursor, lambda v: v.__setitem__(1, iso(rows[0].ts - timedelta(days=1))))
    assert f.get(PATH, cursor=moved, sensor="climate").status_code == 200  # well-formed: just a position
    assert f.get(PATH, cursor="x" * 600).status_code == 400
    assert f.get(PATH, cursor="bm90IGpzb24").status_code == 400


def test_readings_need_events_read(world: tuple[Fleet, list[Row]]) -> None:
    f, _ = world
    assert f.get(PATH, None).status_code == 401
    assert f.get(PATH, "devices:read").status_code == 403
    assert f.get(PATH, "devices:write").status_code == 403
    assert f.get(PATH, "events:read").status_code == 200
    assert f.get(PATH, "admin").status_code == 200


def test_the_tie_order_within_one_instant(world: tuple[Fleet, list[Row]]) -> None:
    """Rows of one instant: by event id, then sensor, then quantity (the documented order)."""
    f, rows = world
    by_ts: dict[datetime, list[Row]] = defaultdict(list)
    for r in rows:
        by_ts[r.ts].append(r)
    tied = next(ts for ts, group in by_ts.items() if len({r.event_id for r in group}) > 1)
    got = f.ok(PATH, since=iso(tied), until=iso(tied + timedelta(microseconds=1)))["readings"]
    assert [(r["event_id"], r["sensor"], r["quantity"]) for r in got] == sorted(
        (r.event_id, r.sensor, r.quantity) for r in by_ts[tied]
    )
    assert tied.tzinfo is not None and tied.utcoffset() == timedelta(0)
    assert datetime.fromisoformat(got[0]["ts"]).astimezone(UTC) == tied
