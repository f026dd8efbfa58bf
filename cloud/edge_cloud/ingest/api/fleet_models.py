"""Response models shared by the fleet routes: a test run and an alarm as the API shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from edge_cloud.ingest.queries.alarms import StoredAlarm
from edge_cloud.ingest.queries.test_results import StoredTestResult


class TestResultOut(BaseModel):
    event_id: str
    ts: datetime
    sensor: str | None
    test: str
    kind: str
    status: str
    trigger: str | None
    detail: str | None
    data: dict[str, Any]

    @classmethod
    def of(cls, t: StoredTestResult) -> TestResultOut:
        return cls(
            event_id=t.event_id,
            ts=t.ts,
            sensor=t.sensor,
            test=t.test,
            kind=t.kind,
            status=t.status,
            trigger=t.trigger,
            detail=t.detail,
            data=t.data,
        )


class AlarmOut(BaseModel):
    event_id: str
    ts: datetime
    sensor: str | None
    code: str
    data: dict[str, Any]

    @classmethod
    def of(cls, a: StoredAlarm) -> AlarmOut:
        return cls(event_id=a.event_id, ts=a.ts, sensor=a.sensor, code=a.code, data=a.data)
