"""Alarm life cycle (issue 16 item 8, issue 17 item 6): raised once, reminded, cleared with
the same id; a sensor failed too long raises one; CLI results reach the daemon as events."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from edge_agent.alarms import AlarmBook
from edge_agent.daemon.trust import SensorTrust
from edge_agent.events import NewEvent
from edge_agent.sampling.clock_sync import ClockWatch
from edge_agent.sampling.health import BreakerPolicy, HealthGuard, SensorHealth
from edge_agent.sensor_tests.result import TestResult
from edge_agent.settings import Settings
from edge_agent.spool import BAD_DIR, spool_dir, take_spool, write_spool
from edge_protocol.wire import ALARM_STATES


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def result(status: str, *, test: str = "climate-range", alarm: bool = True) -> TestResult:
    return TestResult(
        test=test,
        sensor="climate",
        kind="range",
        status=status,  # type: ignore[arg-type]
        detail=f"temperature {'101.2' if status == 'fail' else '21.0'} °C",
        measured={},
        limits={},
        duration_s=0.1,
        trigger="schedule",
        alarm=alarm,
    )


def make_trust(
    tmp_path: Path, clock: Clock, configured: set[str] | None = None, **alarms: str
) -> tuple[SensorTrust, list[NewEvent], dict[str, HealthGuard], dict[str, str]]:
    settings = Settings.model_validate(
        {
            "device": {"id": "t-1", "clock_check": "none"},
            "storage": {"state_dir": str(tmp_path)},
            "alarms": {"remind_every": "1h", "sensor_failed_after": "10min"} | alarms,
            "sensors": [
                {"name": "climate", "driver": "bme280", "bus": "sim", "address": 0x76},
                {"name": "gps", "driver": "nmea", "port": "sim://"},
            ],
            "tests": [
                {"name": "climate-range", "sensor": "climate", "kind": "range", "schedule": "1m",
                 "alarm": True, "limits": {"temperature_c": [-10, 50]}},
            ],
        }
    )  # fmt: skip
    events: list[NewEvent] = []

    async def submit(event: NewEvent) -> NewEvent:
        events.append(event)
        return event  # committed (the daemon's submit_or_drop answers None for a drop)

    guards: dict[str, HealthGuard] = {}
    not_open: dict[str, str] = {}
    sensors = {"climate", "gps"} if configured is None else configured
    trust = SensorTrust(
        settings,
        sensors={},
        not_open=not_open,
        submit=submit,
        boot="b",
        clock=ClockWatch("none"),
        guards=guards,
        configured=lambda: sensors,
        monotonic=clock,
        wall=lambda: 1.75e9 + clock.now,
    )
    return trust, events, guards, not_open


def alarms_of(events: list[NewEvent]) -> list[dict[str, Any]]:
    return [e.data for e in events if e.kind == "alarm"]


def test_book_raises_once_reminds_and_clears_with_the_same_id() -> None:
    clock = Clock()
    book = AlarmBook(60.0, monotonic=clock, wall=lambda: 1.75e9)
    raised = book.judged("test:x", True, code="sensor_test_failed", sensor="s", detail="bad")
    assert raised is not None and raised[1]["state"] == "raised" and raised[1]["cleared"] is False
    assert book.judged("test:x", True, code="sensor_test_failed", sensor="s", detail="worse") is None
    clock.now += 59
    assert book.due_reminders() == []
    clock.now += 1
    ((_, reminder),) = book.due_reminders()
    assert reminder["state"] == "reminder" and reminder["reminders"] == 1 and reminder["detail"] == "worse"
    cleared = book.judged("test:x", False, code="sensor_test_failed", sensor="s", detail="good")
    assert cleared is not None and cleared[1]["state"] == "cleared" and cleared[1]["cleared"] is True
    assert {raised[1]["alarm_id"]} == {reminder["alarm_id"], cleared[1]["alarm_id"]}
    assert book.judged("test:x", False, code="sensor_test_failed", sensor="s", detail="good") is None
    assert set(ALARM_STATES) == {"raised", "reminder", "cleared"}


def test_a_failing_test_raises_one_alarm_not_one_per_run(tmp_path: Path) -> None:
    clock = Clock()
    trust, events, _, _ = make_trust(tmp_path, clock, remind_every="1h")

    async def main() -> None:
        for _ in range(24):  # every 12.5 s for five minutes: the old daemon sent 24 alarms
            await trust._publish(result("fail"))
            clock.now += 12.5
            await trust.alarm_keeper.check()
        await trust._publish(result("error"))  # could not judge: the alarm stays open
        assert trust.alarms.is_open("test:climate-range")
        clock.now += 3600
        await trust.alarm_keeper.check()  # an hour on: one reminder
        await trust._publish(result("pass"))

    asyncio.run(main())
    states = [a["state"] for a in alarms_of(events)]
    assert states == ["raised", "reminder", "cleared"]
    assert len({a["alarm_id"] for a in alarms_of(events)}) == 1
    assert (
        alarms_of(events)[0]["test"] == "climate-range"
        and alarms_of(events)[0]["code"] == "sensor_test_failed"
    )
    assert [e.kind for e in events].count("test_result") == 26
    assert trust.alarms.summaries() == []


def test_a_test_without_alarm_raises_none(tmp_path: Path) -> None:
    trust, events, _, _ = make_trust(tmp_path, Clock())
    asyncio.run(trust.alarm_keeper.judge_test(result("fail", alarm=False)))
    assert alarms_of(events) == []


def test_a_sensor_failed_longer_than_the_setting_raises_an_alarm_cleared_when_ok(tmp_path: Path) -> None:
    clock = Clock()
    configured = {"climate", "gps"}  # what a reload changes
    trust, events, guards, not_open = make_trust(tmp_path, clock, configured, remind_every="30min")

    async def announce(sensor: str, data: dict[str, Any]) -> None:
        pass

    health = SensorHealth(BreakerPolicy(open_after=1, probe_after=5, close_after=1), clock=clock)
    guards["climate"] = HealthGuard("climate", health, announce=announce)
    not_open["gps"] = "ChipNotFoundError: no such port"

    async def main() -> None:
        await trust.alarm_keeper.check()  # gps seen not openable from now on
        health.failed("BusError: errno 121 EREMOTEIO (no ACK)")
        await trust.alarm_keeper.check()
        clock.now += 599
        await trust.alarm_keeper.check()
        assert alarms_of(events) == []  # its bus dead for 9 min 59 s: not yet
        clock.now += 1
        await trust.alarm_keeper.check()
        clock.now += 1800
        await trust.alarm_keeper.check()
        health.succeeded()  # probe ok: recovering is still the failure's series
        await trust.alarm_keeper.check()
        health.succeeded()
        assert health.state == "ok"
        await trust.alarm_keeper.check()
        del not_open["gps"]
        configured.discard("gps")  # a reload removed it: its alarm is over too
        await trust.alarm_keeper.check()

    asyncio.run(main())
    by_sensor: dict[str, list[str]] = {}
    for e in events:
        by_sensor.setdefault(str(e.sensor), []).append(e.data["state"])
    assert by_sensor == {
        "climate": ["raised", "reminder", "cleared"],
        "gps": ["raised", "reminder", "cleared"],
    }
    climate = [e.data for e in events if e.sensor == "climate"]
    assert climate[0]["code"] == "sensor_failed" and "EREMOTEIO" in climate[0]["detail"]
    assert events[-1].data["detail"] == "sensor no longer configured"
    assert trust.alarms.summaries() == []


def test_spooled_cli_results_are_committed_in_order_and_count_for_alarms(tmp_path: Path) -> None:
    trust, events, _, _ = make_trust(tmp_path, Clock())
    cli = {"trigger": "cli"}
    failed = NewEvent.now("test_result", "climate", result("fail").event_data() | cli, boot="b", wall=1.75e9)
    passed = NewEvent.now(
        "test_result", "climate", result("pass").event_data() | cli, boot="b", wall=1.75e9 + 1
    )
    write_spool(tmp_path, [passed])  # files are taken by event time, not by when they were written
    first = write_spool(tmp_path, [failed])
    (spool_dir(tmp_path) / "junk.json").write_text("{not json")
    assert json.loads(first.read_text())[0]["id"] == failed.id

    taken = asyncio.run(take_spool(tmp_path, trust._take_spooled))
    assert taken == 2
    assert [(e.kind, e.id) for e in events] == [
        ("test_result", failed.id),
        ("alarm", events[1].id),
        ("test_result", passed.id),
        ("alarm", events[3].id),
    ]
    assert [a["state"] for a in alarms_of(events)] == ["raised", "cleared"]
    assert list(spool_dir(tmp_path).glob("*.json")) == []
    assert (spool_dir(tmp_path) / BAD_DIR / "junk.json").exists()
    assert [e.data["trigger"] for e in events if e.kind == "test_result"] == ["cli", "cli"]


def test_open_alarms_survive_a_restart_no_second_raise_and_cleared_with_the_same_id(tmp_path: Path) -> None:
    clock = Clock()
    first, events, _, not_open = make_trust(tmp_path, clock, remind_every="1h")
    not_open["gps"] = "ChipNotFoundError: no such port"

    async def before() -> None:
        await first.open()
        await first._publish(result("fail"))
        await first.alarm_keeper.check()
        clock.now += 600
        await first.alarm_keeper.check()  # gps: sensor_failed raised
        await first.close()

    asyncio.run(before())
    raised = {a["code"]: a["alarm_id"] for a in alarms_of(events)}
    assert set(raised) == {"sensor_test_failed", "sensor_failed"}

    clock.now += 1800  # the daemon restarts half an hour later
    second, after_events, _, _ = make_trust(tmp_path, clock, remind_every="1h")

    async def after() -> None:
        await second.open()
        assert {a.id for a in second.alarms.open_alarms()} == set(raised.values())
        await second._publish(result("fail"))  # still failing: no second alarm
        await second.alarm_keeper.check()  # gps not seen failed nor well yet: left open
        clock.now += 1800
        await second.alarm_keeper.check()  # an hour after the last event: reminders, same ids
        await second._publish(result("pass"))
        await second.close()

    asyncio.run(after())
    states = [(a["code"], a["state"], a["alarm_id"]) for a in alarms_of(after_events)]
    assert states == [
        ("sensor_test_failed", "reminder", raised["sensor_test_failed"]),
        ("sensor_failed", "reminder", raised["sensor_failed"]),
        ("sensor_test_failed", "cleared", raised["sensor_test_failed"]),
    ] or states == [
        ("sensor_failed", "reminder", raised["sensor_failed"]),
        ("sensor_test_failed", "reminder", raised["sensor_test_failed"]),
        ("sensor_test_failed", "cleared", raised["sensor_test_failed"]),
    ]
    third, _, _, _ = make_trust(tmp_path, clock)
    asyncio.run(third.open())
    assert [a.code for a in third.alarms.open_alarms()] == ["sensor_failed"]


def test_a_corrupted_alarms_file_is_logged_and_the_daemon_goes_on(tmp_path: Path) -> None:
    record = {
        "id": "01977430-1e40-740b-a7b1-dec7c255ed34", "key": "test:climate-range",
        "code": "sensor_test_failed", "sensor": "climate", "detail": "x",
        "raised_at": "2026-01-01T00:00:00.000Z", "reminders": 0, "context": {},
        "last_sent_wall": 1.7e9,
    }  # fmt: skip
    bodies = [
        "[" * 100_000 + "]" * 100_000,  # RecursionError in the JSON parser
        json.dumps([record | {"reminders": 1e400}]).replace("Infinity", "1e400"),  # int(inf)
        json.dumps([record | {"raised_at": 5}]),
    ]
    for body in bodies:
        (tmp_path / "alarms.json").write_text(body)
        trust, events, _, _ = make_trust(tmp_path, Clock())

        async def main(trust: SensorTrust) -> None:
            await trust.open()
            await trust._publish(result("fail"))
            await trust.close()

        asyncio.run(main(trust))
        assert [a["state"] for a in alarms_of(events)] == ["raised"], body[:40]
