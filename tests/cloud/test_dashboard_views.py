"""The dashboard's alarm rows: one row per alarm, whatever number of events it had."""

from __future__ import annotations


def test_the_events_of_one_alarm_are_one_row_showing_what_it_is_now() -> None:
    from datetime import UTC, datetime, timedelta

    from edge_cloud.ingest.dashboard.views import _alarm_rows
    from edge_cloud.ingest.queries.alarms import StoredAlarm

    t0 = datetime(2026, 12, 1, tzinfo=UTC)

    def event(n: int, alarm_id: str | None, state: str) -> StoredAlarm:
        data = {"code": "sensor_test_failed", "state": state, "cleared": state == "cleared", "test": "t"}
        if alarm_id:
            data["alarm_id"] = alarm_id
        return StoredAlarm(f"e{n}", t0 + timedelta(minutes=n), "climate", "sensor_test_failed", data)

    events = [event(1, "a1", "raised"), event(2, "a1", "reminder"), event(3, "a1", "cleared")]
    events += [event(4, "a2", "raised"), event(5, None, "raised")]  # a2 open; one from an older device
    latest = [events[4]]  # the latest per (sensor, code)
    rows = _alarm_rows("d", events, latest, [])
    by_id = {r.alarm.event_id: r for r in rows}
    assert sorted(by_id) == ["e3", "e4", "e5"]
    assert by_id["e3"].raised_at == t0 + timedelta(minutes=1) and not by_id["e3"].open
    assert by_id["e5"].open
