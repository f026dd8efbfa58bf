"""The daemon's alarms: which conditions raise them, where they are kept, when they are sent.

:class:`AlarmKeeper` judges the conditions and turns what the
:class:`~edge_agent.alarms.AlarmBook` answers into ``alarm`` events:

- a test with ``alarm = true``: raised when it fails, cleared when it passes; an
  ``error`` run (could not judge) leaves it as it is;
- a sensor failed (breaker open or half-open, or not openable) for ``[alarms]
  sensor_failed_after``: ``sensor_failed``, cleared once it is ``ok`` with a good read
  behind it, or no longer configured;
- reminders every ``[alarms] remind_every``.

The open alarms are kept in ``{state_dir}/alarms.json``, rewritten before each alarm event
(a crash in between repeats an event rather than losing an alarm), and restored at start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from edge_agent.alarms import ALARMS_FILE, Alarm, AlarmBook, load_records, save_records
from edge_agent.sampling.health import HealthGuard
from edge_agent.sampling.sampler import SensorLoop
from edge_agent.sensor_tests.result import TestResult
from edge_agent.settings import Settings

log = logging.getLogger(__name__)

TEST_FAILED = "sensor_test_failed"
SENSOR_FAILED = "sensor_failed"
SendAlarm = Callable[[str | None, dict[str, Any]], Awaitable[object]]
"""Commits an ``alarm`` event: ``(sensor, data)``."""


class AlarmKeeper:
    """The alarms of one daemon run; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        *,
        send: SendAlarm,
        sensors: Mapping[str, SensorLoop],
        guards: Mapping[str, HealthGuard],
        not_open: Mapping[str, str],
        configured: Callable[[], set[str]],
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings.alarms
        self.book = AlarmBook(settings.alarms.remind_every, monotonic=monotonic, wall=wall)
        self.path = settings.storage.state_dir / ALARMS_FILE
        self._send = send
        self._sensors = sensors
        self._guards = guards
        self._not_open = not_open
        self._configured = configured
        """The sensors configured now (a reload changes them)."""
        self._monotonic = monotonic
        self._failed_since: dict[str, float] = {}
        """Sensors seen failed (or not openable), since when; gone once seen not failing."""

    async def open(self) -> None:
        """Restore the alarms open before a restart."""
        records = await asyncio.to_thread(load_records, self.path)
        try:
            self.book.restore(records)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:  # OverflowError: int(1e400)
            log.error(
                "open alarms in %s unreadable (%s): conditions that still hold alarm again", self.path, exc
            )
        for alarm in self.book.open_alarms():
            log.info(
                "alarm %s (%s on %s) still open from before the restart", alarm.id, alarm.code, alarm.sensor
            )

    async def run(self) -> None:
        """Judge the sensors and send reminders, until cancelled."""
        a = self.settings
        shortest = min(a.sensor_failed_after, a.remind_every or a.sensor_failed_after)
        tick = min(max(shortest / 4, 0.05), 30.0)  # late by at most a quarter of the shortest span
        while True:
            await asyncio.sleep(tick)
            await self.check()

    async def judge_test(self, result: TestResult) -> None:
        """Raise or clear the test's alarm; an ``error`` (could not judge) leaves it as it is."""
        if not result.alarm or result.status == "error":
            return
        outcome = self.book.judged(
            f"test:{result.test}",
            result.status == "fail",
            code=TEST_FAILED,
            sensor=result.sensor,
            detail=result.detail,
            context={"test": result.test, "kind": result.kind},
        )
        if outcome is not None:
            await self._alarm(*outcome)

    async def check(self) -> None:
        """Sensors failed too long, sensors back, reminders due: one pass."""
        after = self.settings.sensor_failed_after
        now = self._monotonic()
        configured = self._configured()
        alarmed = {a.sensor for a in self.book.open_alarms() if a.code == SENSOR_FAILED and a.sensor}
        for name in sorted(configured | alarmed):
            failed_for, reason = self._failed_for(name, now)
            holds = name in configured and failed_for is not None and failed_for >= after
            if not holds and not self.book.is_open(f"sensor:{name}"):
                continue
            if holds:
                detail = f"failed for {failed_for:.0f} s: {reason}"
            elif name not in configured:
                detail = "sensor no longer configured"
            elif failed_for is None and self._proven(name):
                detail = "sensor is ok again (breaker closed)"
            else:
                continue  # failing, or just started (after a restart): not over yet
            outcome = self.book.judged(
                f"sensor:{name}", holds, code=SENSOR_FAILED, sensor=name, detail=detail
            )
            if outcome is not None:
                await self._alarm(*outcome)
        for alarm, data in self.book.due_reminders():
            await self._alarm(alarm, data)

    def _proven(self, name: str) -> bool:
        """``name`` is ``ok`` with a good read behind it."""
        guard, loop = self._guards.get(name), self._sensors.get(name)
        return guard is not None and guard.health.state == "ok" and (loop is None or loop.counters.reads > 0)

    def _failed_for(self, name: str, now: float) -> tuple[float | None, str]:
        """How long ``name`` has been failed (its breaker open or half-open, or not openable)."""
        guard = self._guards.get(name)
        if guard is not None:
            reason = guard.health.reason or ""
            failing = guard.health.state in ("failed", "recovering")
        else:
            reason = self._not_open.get(name) or ""
            failing = name in self._not_open
        if not failing:
            self._failed_since.pop(name, None)
            return None, ""
        return now - self._failed_since.setdefault(name, now), reason

    async def _alarm(self, alarm: Alarm, data: dict[str, Any]) -> None:
        state = data["state"]
        level = logging.INFO if state == "cleared" else logging.WARNING
        log.log(level, "alarm %s %s (%s on %s): %s", alarm.id, state, alarm.code, alarm.sensor, alarm.detail)
        try:  # before the event: a crash in between repeats an event rather than losing the alarm
            await asyncio.to_thread(save_records, self.path, self.book.records())
        except OSError as exc:
            log.error("cannot keep the open alarms in %s: %s", self.path, exc.strerror or exc)
        await self._send(alarm.sensor, data)
