"""Response models shared by the fleet routes: a test run and an alarm as the API shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class TestResultOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    event_id: str
    ts: datetime
    sensor: str | None
    test: str
    kind: str
    status: str
    trigger: str | None
    detail: str | None
    data: dict[str, Any]


class AlarmOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    event_id: str
    ts: datetime
    sensor: str | None
    code: str
    data: dict[str, Any]
