"""``GET /v1/devices`` and ``/v1/devices/{id}``: what each device reported, measures, has
open and failing; paged on device id; 404, scopes.  Data goes in through ``Store.write``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from edge_cloud.ingest.api.fleet_cursors import encode_key
from tests.cloud.ingest_api.fleet_helpers import RECEIVED, Fleet, failed_alarm_data, fleet, run_data
from tests.cloud.ingest_write.helpers import BOOT, EPOCH, Device


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[Fleet]:
    with fleet(database_url, tmp_path) as f:
        yield f


def seed_site_a(world: Fleet) -> Device:
    d = Device("site-a")
    world.events(
        d,
        [
            *d.readings(3),
            d.event("reading", {"voltage_v": 5.0}, sensor="power"),
            d.event("test_result", run_data("fail"), sensor="climate"),
            d.event("alarm", failed_alarm_data(), sensor="climate"),
            d.event("test_result", run_data("pass", test="noise"), sensor="climate"),
            d.event("test_result", run_data("error", sensor="power"), sensor="power"),
            d.event("test_result", run_data("pass", sensor="gps"), sensor="gps"),
            d.event("alarm", {"code": "over_temp"}, sensor="climate"),
            d.event("alarm", {"code": "over_temp", "cleared": True}, sensor="climate"),
            d.event("alarm", {"code": "fan_stuck"}, sensor=None),
            d.event("gap", {"reason": "size_cap", "evicted": [[100, 102]], "count": 3}),
            d.event(
                "gap", {"reason": "not_committed", "evicted": [], "count": 7, "dropped": {"outbox_busy": 7}}
            ),
        ],
    )
    world.status("site-a", online=True, epoch=EPOCH, pending=42, ts=RECEIVED)
    return d


def test_a_device_shows_its_state_sensors_open_alarms_and_failing_tests(world: Fleet) -> None:
    d = seed_site_a(world)
    body = world.ok("/v1/devices/site-a", "devices:read")
    assert {
        k: body[k]
        for k in (
            "device_id",
            "online",
            "boot",
            "epoch",
            "pending_events",
            "evicted_events",
            "dropped_events",
        )
    } == {
        "device_id": "site-a",
        "online": True,
        "boot": BOOT,
        "epoch": EPOCH,
        "pending_events": 42,
        "evicted_events": 3,
        "dropped_events": 7,
    }
    assert body["last_seen"] == body["first_seen"] == "2026-11-25T14:00:00Z"
    assert body["status_at"] == "2026-11-25T14:00:00Z"
    # Sensors with readings (climate, power) and with test results only (gps).
    assert body["sensors"] == ["climate", "gps", "power"]
    # over_temp was cleared by its own later event; fan_stuck and the failed test's are open.
    assert [(a["sensor"], a["code"]) for a in body["open_alarms"]] == [
        (None, "fan_stuck"),
        ("climate", "sensor_test_failed"),
    ]
    assert [(t["sensor"], t["test"], t["status"]) for t in body["failing_tests"]] == [
        ("climate", "range", "fail"),
        ("power", "range", "error"),
    ]
    assert body["failing_tests"][0]["data"]["limits"] == {"temperature_c": [-40, 85]}

    # The range test passes again: its alarm closes and it is no longer failing.
    world.events(
        d, [d.event("test_result", run_data("pass"), sensor="climate")], RECEIVED + timedelta(hours=1)
    )
    body = world.ok("/v1/devices/site-a", "devices:read")
    assert [(a["sensor"], a["code"]) for a in body["open_alarms"]] == [(None, "fan_stuck")]
    assert [(t["sensor"], t["test"]) for t in body["failing_tests"]] == [("power", "range")]
    assert body["last_seen"] == "2026-11-25T15:00:00Z"

    # A clean stop: offline, with what it leaves unsent.
    world.status("site-a", online=False, epoch=EPOCH, pending=7, ts=RECEIVED + timedelta(hours=2))
    body = world.ok("/v1/devices/site-a", "devices:read")
    assert (body["online"], body["pending_events"], body["status_at"]) == (False, 7, "2026-11-25T16:00:00Z")


def test_a_device_heard_only_through_events_has_no_status_yet(world: Fleet) -> None:
    d = Device("site-b")
    world.events(d, d.readings(2))
    body = world.ok("/v1/devices/site-b", "devices:read")
    assert (body["online"], body["status_at"], body["pending_events"], body["evicted_events"]) == (
        None,
        None,
        None,
        0,
    )
    assert (body["sensors"], body["open_alarms"], body["failing_tests"]) == (["climate"], [], [])


def test_the_fleet_pages_on_device_id_completely_and_in_order(world: Fleet) -> None:
    ids = [f"dev-{n:02d}" for n in (7, 3, 11, 1, 5, 9, 2)]
    for device_id in ids:
        d = Device(device_id)
        world.events(d, d.readings(1))
    pages = world.walk("/v1/devices", "devices", "devices:read", limit=3)
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [d["device_id"] for p in pages for d in p] == sorted(ids)
    whole = world.ok("/v1/devices", "devices:read", limit=1000)
    assert [d["device_id"] for d in whole["devices"]] == sorted(ids)
    assert whole["next_cursor"] is None
    assert all(d["sensors"] == ["climate"] for d in whole["devices"])


def test_unknown_devices_bad_ids_and_foreign_cursors_are_refused(world: Fleet) -> None:
    d = Device("site-a")
    world.events(d, d.readings(1))
    assert world.get("/v1/devices/site-z", "devices:read").status_code == 404
    assert world.get("/v1/devices/-bad", "devices:read").status_code == 422
    assert world.get("/v1/devices", "devices:read", limit=0).status_code == 422
    assert world.get("/v1/devices", "devices:read", cursor="garbage!").status_code == 400
    assert world.get("/v1/devices", "devices:read", cursor=encode_key("quarantine", 5)).status_code == 400
    assert world.get("/v1/devices", "devices:read", cursor=encode_key("devices", 5)).status_code == 400


def test_the_fleet_needs_devices_read(world: Fleet) -> None:
    seed_site_a(world)
    for path in ("/v1/devices", "/v1/devices/site-a"):
        assert world.get(path, None).status_code == 401
        assert world.get(path, "events:read").status_code == 403
        assert world.get(path, "devices:write").status_code == 403
        assert world.get(path, "devices:read").status_code == 200
        assert world.get(path, "admin").status_code == 200


def test_a_device_alarm_life_cycle_is_stored_open_while_reminded_and_closed_when_cleared(
    world: Fleet,
) -> None:
    from edge_agent.alarms import AlarmBook

    d = Device("site-l")
    book = AlarmBook(60.0, monotonic=lambda: 0.0)
    raised = book.judged("sensor:gps", True, code="sensor_failed", sensor="gps", detail="failed for 600 s")
    assert raised is not None
    alarm, data = raised
    book.remind_every, alarm.last_sent_mono = 1.0, -1.0
    ((_, reminder),) = book.due_reminders()
    world.events(d, [d.event("alarm", data, sensor="gps"), d.event("alarm", reminder, sensor="gps")])
    body = world.ok("/v1/devices/site-l", "devices:read")
    (open_alarm,) = body["open_alarms"]
    assert open_alarm["code"] == "sensor_failed" and open_alarm["data"]["state"] == "reminder"
    cleared = book.judged("sensor:gps", False, code="sensor_failed", sensor="gps", detail="ok again")
    assert cleared is not None
    world.events(d, [d.event("alarm", cleared[1], sensor="gps")], RECEIVED + timedelta(minutes=5))
    assert world.ok("/v1/devices/site-l", "devices:read")["open_alarms"] == []
    stored = world.ok("/v1/devices/site-l/alarms", "events:read", limit=10)["alarms"]
    assert [a["data"]["state"] for a in stored] == ["cleared", "reminder", "raised"]
    assert {a["data"]["alarm_id"] for a in stored} == {data["alarm_id"]}
