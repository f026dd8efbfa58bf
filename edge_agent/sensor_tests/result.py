"""The outcome of one sensor-test run, and the events it becomes.

A run is ``pass``, ``fail`` (the sensor is not trustworthy) or ``error`` (the test could
not judge: the driver raised, the sensor is not open, the run overran).  An error is
never a pass.  ``data`` of the ``test_result`` event::

    {"test": "climate-noise", "sensor": "climate", "kind": "noise", "status": "fail",
     "passed": false, "measured": {"std": 0.41, "mean": 21.3, "samples": 10},
     "limits": {"max_std": 0.05}, "duration_s": 2.03, "detail": "…", "trigger": "schedule"}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["pass", "fail", "error"]
Trigger = Literal["schedule", "cli", "remote"]


@dataclass(frozen=True)
class Verdict:
    """What a test kind concludes, before the runner adds name, timing and trigger."""

    status: Status
    detail: str
    measured: Mapping[str, float | int | str | None] = field(default_factory=dict)
    limits: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TestResult:
    test: str
    sensor: str
    kind: str
    status: Status
    detail: str
    measured: Mapping[str, float | int | str | None]
    limits: Mapping[str, Any]
    duration_s: float
    trigger: Trigger
    alarm: bool = False
    """The test raises an alarm while it fails (edge_agent.alarms)."""

    __test__ = False  # not a pytest test class, despite the name

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def event_data(self) -> dict[str, Any]:
        return {
            "test": self.test,
            "sensor": self.sensor,
            "kind": self.kind,
            "status": self.status,
            "passed": self.passed,
            "measured": dict(self.measured),
            "limits": dict(self.limits),
            "duration_s": round(self.duration_s, 3),
            "detail": self.detail,
            "trigger": self.trigger,
        }


EX_UNAVAILABLE = 69
"""sysexits.h: what the test needs (a sensor, a bus) is unavailable."""


def exit_status(results: list[TestResult]) -> int:
    """``edge-agent test run``: 69 (EX_UNAVAILABLE) if any could not run, else 1 if any failed, else 0.

    Not 2: that is every command's usage mistake (an unknown test name)."""
    if any(r.status == "error" for r in results):
        return EX_UNAVAILABLE
    if any(r.status == "fail" for r in results):
        return 1
    return 0
