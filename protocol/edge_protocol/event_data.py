"""What ``data`` holds, by event kind (docs/PROTOCOL.md, "data by kind").

These models describe; the envelope (:class:`edge_protocol.wire.Envelope`) keeps ``data``
an open object so that a subscriber built against one version takes the next version's
added keys.  Each model lists the keys every event of its kind carries, and allows more
(a ``status`` event names what happened in ``event`` or ``state``, and each has its own
keys).  The published JSON Schema (``docs/schema/``) is generated from them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from edge_protocol.wire import EventKind

_OPEN = ConfigDict(extra="allow")


class ReadingData(BaseModel):
    """quantity → value (a JSON number; the name carries the unit), and the calibrations applied."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"additionalProperties": {"type": "number"}})

    cal: dict[str, int] | None = Field(
        None, description="quantity → id of the calibration applied to its value (absent: all raw)"
    )


class TestResultData(BaseModel):
    """One run of a sensor test (docs/SENSOR_TESTS.md)."""

    __test__ = False  # not a pytest class, whatever its name says
    model_config = _OPEN

    test: str
    sensor: str | None = None
    kind: str
    status: Literal["pass", "fail", "error"]
    passed: bool
    measured: dict[str, Any] = Field(default_factory=dict)
    limits: dict[str, Any] = Field(default_factory=dict)
    duration_s: float | None = None
    detail: str = ""
    trigger: Literal["schedule", "remote", "cli"] | None = None


class AlarmData(BaseModel):
    """A condition the device raises (``cleared: true``: the condition is gone)."""

    model_config = _OPEN

    code: str
    detail: str | None = None
    cleared: bool | None = None


class StatusData(BaseModel):
    """A device- or sensor-level happening: ``event`` names it (``calibration_changed``,
    ``sensor_health``, ``config_reload``, ``outbox_quarantined`` …), or ``state`` for the
    daemon's own ``started`` / ``stopping``."""

    model_config = _OPEN

    event: str | None = None
    state: str | None = None


class GapData(BaseModel):
    """Events evicted before they could be sent: inclusive seq ranges of this epoch (or of
    ``epoch`` when given).  Reason ``exported``: not lost but carried out in a file
    (``edge-agent buffer export --mark-exported``), stored when that file is imported.
    Reason ``not_committed``: events the device made and could not commit, so they never
    had seqs (``evicted`` empty): ``count`` of them, ``dropped`` by why, between
    ``first_ts`` and ``last_ts``."""

    model_config = _OPEN

    reason: Literal["size_cap", "age_cap", "disk_full", "exported", "not_committed"]
    evicted: list[tuple[int, int]]
    count: int = Field(ge=0)
    epoch: str | None = None
    dropped: dict[str, int] | None = None
    """``not_committed`` only: the count by reason (``outbox_busy``, ``disk_full`` …)."""
    first_ts: str | None = None
    last_ts: str | None = None


DATA_BY_KIND: dict[EventKind, type[BaseModel]] = {
    "reading": ReadingData,
    "test_result": TestResultData,
    "alarm": AlarmData,
    "status": StatusData,
    "gap": GapData,
}
"""A kind missing here (a newer one) gets an open ``data`` object in its schema."""
