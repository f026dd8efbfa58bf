"""``GET /v1/devices/{id}/test-results``: keyset paging on ``(ts, event_id)`` in both orders
(ties on ``ts`` included), every filter, the window's bounds, refusals and scopes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.cloud.ingest_api.fleet_helpers import Fleet, fleet, run_data
from tests.cloud.ingest_write.helpers import Device

PATH = "/v1/devices/site-a/test-results"
RUNS = [  # (sensor, test, status); every third one at the same ts as the one before
    ("climate", "range", "pass"),
    ("climate", "range", "fail"),
    ("climate", "noise", "pass"),
    ("power", "range", "error"),
    ("power", "range", "pass"),
    ("climate", "range", "fail"),
    ("climate", "noise", "fail"),
    ("power", "stuck", "pass"),
    ("climate", "range", "pass"),
    ("power", "range", "fail"),
    ("climate", "noise", "error"),
    ("climate", "range", "pass"),
]


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[tuple[Fleet, list[dict[str, Any]]]]:
    with fleet(database_url, tmp_path) as f:
        d = Device("site-a")
        made = []
        for n, (sensor, test, status) in enumerate(RUNS):
            if n % 3 == 2:
                d.t -= timedelta(seconds=1)  # same ts as the previous run: the event id decides
            made.append(d.event("test_result", run_data(status, test, sensor), sensor=sensor))
        f.events(d, [*d.readings(5), *made])
        yield f, made


def ordered(made: list[dict[str, Any]], *, descending: bool = True) -> list[str]:
    return [e["id"] for e in sorted(made, key=lambda e: (e["ts"], e["id"]), reverse=descending)]


def ids(pages: list[list[dict[str, Any]]]) -> list[str]:
    return [t["event_id"] for p in pages for t in p]


def test_pages_are_complete_and_ordered_both_ways(world: tuple[Fleet, list[dict[str, Any]]]) -> None:
    f, made = world
    pages = f.walk(PATH, "test_results", limit=5)
    assert [len(p) for p in pages] == [5, 5, 2]
    assert ids(pages) == ordered(made)
    pages = f.walk(PATH, "test_results", limit=5, order="asc")
    assert [len(p) for p in pages] == [5, 5, 2]
    assert ids(pages) == ordered(made, descending=False)
    first = f.ok(PATH, limit=1)["test_results"][0]
    newest = next(e for e in made if e["id"] == ordered(made)[0])
    assert first["event_id"] == newest["id"]
    assert first["data"] == newest["data"]
    assert (first["sensor"], first["test"], first["status"], first["trigger"]) == (
        newest["sensor"],
        newest["data"]["test"],
        newest["data"]["status"],
        "schedule",
    )
    assert first["ts"] == newest["ts"].replace(".000Z", "Z")


def test_filters_and_the_window(world: tuple[Fleet, list[dict[str, Any]]]) -> None:
    f, made = world

    def expect(keep: Any) -> list[str]:
        return ordered([e for e in made if keep(e["data"])])

    assert ids(f.walk(PATH, "test_results", limit=2, status="fail")) == expect(
        lambda d: d["status"] == "fail"
    )
    assert ids(f.walk(PATH, "test_results", limit=2, sensor="power")) == expect(
        lambda d: d["sensor"] == "power"
    )
    assert ids(f.walk(PATH, "test_results", limit=2, test="noise")) == expect(lambda d: d["test"] == "noise")
    both = f.walk(PATH, "test_results", limit=1, sensor="climate", test="range", status="pass")
    assert ids(both) == expect(
        lambda d: (d["sensor"], d["test"], d["status"]) == ("climate", "range", "pass")
    )
    assert len(ids(both)) == 3
    # since is inclusive, until exclusive, and any zone is converted.
    since, until = made[3]["ts"], made[8]["ts"]
    window = [e for e in made if since <= e["ts"] < until]
    assert ids(f.walk(PATH, "test_results", limit=2, since=since, until=until)) == ordered(window)
    shifted = datetime.fromisoformat(since).astimezone(timezone(timedelta(hours=2))).isoformat()
    assert ids(f.walk(PATH, "test_results", since=shifted, until=until)) == ordered(window)
    assert f.ok(PATH, until=made[0]["ts"])["test_results"] == []


def test_bad_parameters_are_refused_never_a_server_error(world: tuple[Fleet, list[dict[str, Any]]]) -> None:
    f, made = world
    ts = made[5]["ts"]
    assert f.get(PATH, since=ts, until=ts).status_code == 422
    assert f.get(PATH, since=made[6]["ts"], until=ts).status_code == 422
    assert f.get(PATH, since="2026-11-25T13:00:00").status_code == 422  # no zone
    assert f.get(PATH, until="9999-12-31T23:00:00-05:00").status_code == 422  # no UTC equivalent
    assert f.get(PATH, since="0001-01-01T00:00:00+05:00").status_code == 422
    assert f.get(PATH, until="0").status_code == 422  # not Unix seconds: not 1970
    assert f.get(PATH, since="1764028800").status_code == 422
    assert f.get(PATH, status="ok").status_code == 422
    assert f.get(PATH, sensor="Bad Sensor").status_code == 422
    assert f.get(PATH, test="a\x00b").status_code == 422
    assert f.get(PATH, limit=1001).status_code == 422
    assert f.get(PATH, order="sideways").status_code == 422
    assert f.get("/v1/devices/site-z/test-results").status_code == 404
    desc_cursor = f.ok(PATH, limit=2)["next_cursor"]
    assert f.get(PATH, cursor=desc_cursor, order="asc").status_code == 400
    assert f.get("/v1/devices/site-a/alarms", cursor=desc_cursor).status_code == 400
    assert f.get(PATH, cursor="x" * 600).status_code == 400
    assert f.get(PATH, cursor="bm90IGpzb24").status_code == 400


def test_test_results_need_events_read(world: tuple[Fleet, list[dict[str, Any]]]) -> None:
    f, _ = world
    assert f.get(PATH, None).status_code == 401
    assert f.get(PATH, "devices:read").status_code == 403
    assert f.get(PATH, "events:read").status_code == 200
