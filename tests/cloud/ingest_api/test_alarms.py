"""``GET /v1/devices/{id}/alarms``: newest first on ``(ts, event_id)``, complete pages,
filters on code, sensor and time; refusals and scopes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.cloud.ingest_api.fleet_helpers import Fleet, failed_alarm_data, fleet, run_data
from tests.cloud.ingest_write.helpers import Device

PATH = "/v1/devices/site-a/alarms"


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[tuple[Fleet, list[dict[str, Any]]]]:
    with fleet(database_url, tmp_path) as f:
        d = Device("site-a")
        alarms = []
        events = d.readings(3)
        for n in range(9):
            if n % 4 == 3:
                d.t -= timedelta(seconds=1)  # a tie on ts
            if n % 3 == 0:
                events.append(d.event("test_result", run_data("fail"), sensor="climate"))
                alarms.append(d.event("alarm", failed_alarm_data(), sensor="climate"))
            elif n % 3 == 1:
                alarms.append(d.event("alarm", {"code": "over_temp", "value": 90 + n}, sensor="power"))
            else:
                alarms.append(d.event("alarm", {"code": "fan_stuck"}, sensor=None))
        events += alarms
        f.events(d, events)
        other = Device("site-b")
        f.events(other, [other.event("alarm", {"code": "over_temp"}, sensor="power")])
        yield f, alarms


def newest_first(alarms: list[dict[str, Any]]) -> list[str]:
    return [e["id"] for e in sorted(alarms, key=lambda e: (e["ts"], e["id"]), reverse=True)]


def ids(pages: list[list[dict[str, Any]]]) -> list[str]:
    return [a["event_id"] for p in pages for a in p]


def test_alarms_page_newest_first_completely(world: tuple[Fleet, list[dict[str, Any]]]) -> None:
    f, alarms = world
    pages = f.walk(PATH, "alarms", limit=4)
    assert [len(p) for p in pages] == [4, 4, 1]
    assert ids(pages) == newest_first(alarms)
    body = f.ok(PATH, limit=100)
    assert body["next_cursor"] is None and body["device_id"] == "site-a"
    first = body["alarms"][0]
    newest = next(a for a in alarms if a["id"] == first["event_id"])
    assert (first["code"], first["sensor"], first["data"]) == (
        newest["data"]["code"],
        newest["sensor"],
        newest["data"],
    )


def test_alarms_filter_on_code_sensor_and_time(world: tuple[Fleet, list[dict[str, Any]]]) -> None:
    f, alarms = world
    over = [a for a in alarms if a["data"]["code"] == "over_temp"]
    assert ids(f.walk(PATH, "alarms", limit=2, code="over_temp")) == newest_first(over)
    assert len(over) == 3
    assert ids(f.walk(PATH, "alarms", limit=2, sensor="climate")) == newest_first(
        [a for a in alarms if a["sensor"] == "climate"]
    )
    since, until = alarms[2]["ts"], alarms[7]["ts"]
    window = [a for a in alarms if since <= a["ts"] < until]
    assert ids(f.walk(PATH, "alarms", limit=2, since=since, until=until)) == newest_first(window)
    assert f.ok(PATH, code="no_such_code")["alarms"] == []


def test_alarms_refusals_and_scopes(world: tuple[Fleet, list[dict[str, Any]]]) -> None:
    f, alarms = world
    assert f.get("/v1/devices/site-z/alarms").status_code == 404
    assert f.get(PATH, since=alarms[3]["ts"], until=alarms[1]["ts"]).status_code == 422
    assert f.get(PATH, code="").status_code == 422
    assert f.get(PATH, until="0").status_code == 422  # not Unix seconds: not 1970
    cursor = f.ok("/v1/devices/site-a/test-results", limit=1)["next_cursor"]
    assert cursor is not None
    assert f.get(PATH, cursor=cursor).status_code == 400
    assert f.get(PATH, None).status_code == 401
    assert f.get(PATH, "devices:read").status_code == 403
