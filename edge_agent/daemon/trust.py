"""What makes a reading trustworthy, in the running daemon: calibration, sensor tests, remote commands.

:class:`SensorTrust` is wired into :class:`~edge_agent.daemon.main.Daemon` in a few lines:

- it opens the calibration database (``calibration.db`` in the state dir) and holds the
  corrections in effect; each :class:`~edge_agent.sampling.sampler.SensorLoop` gets
  :meth:`transform` to apply them, and :meth:`run` reloads them when the CLI saves a
  change (a ``status`` event ``calibration_changed`` says so, with the coefficients, so
  the cloud can map a reading's ``cal`` id back to raw values);
- it runs the ``[[tests]]`` on their schedules through the sensors' own worker threads,
  each result a ``test_result`` event (plus an ``alarm`` event for a failed test that
  asks for one);
- it answers remote commands (:mod:`edge_agent.remote`) through the forwarder.

A broken calibration database never stops sampling: readings then go out uncorrected
(without ``cal`` ids, so the cloud can tell) and the problem is logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from edge_agent.calibration import (
    CALIBRATION_FILE,
    ActiveCalibrations,
    CalibrationStore,
    CalibrationStoreError,
)
from edge_agent.calibration.store import CalibrationRecord
from edge_agent.calibration.watch import watch_calibrations
from edge_agent.events import NewEvent
from edge_agent.remote import CommandDispatcher
from edge_agent.sampling.clock_sync import ClockWatch
from edge_agent.sampling.sampler import SensorLoop, Transform
from edge_agent.sensor_tests.kinds import CannotJudge, SensorPort, TestContext
from edge_agent.sensor_tests.result import TestResult
from edge_agent.sensor_tests.runner import TestRunner
from edge_agent.sensor_tests.scheduler import run_schedule
from edge_agent.settings import Settings
from edge_agent.uplink import Forwarder

log = logging.getLogger(__name__)

Submit = Callable[[NewEvent], Awaitable[object]]


class SensorTrust:
    """Calibration, sensor tests and remote commands of one daemon run."""

    def __init__(
        self,
        settings: Settings,
        *,
        sensors: Mapping[str, SensorLoop],
        not_open: Mapping[str, str],
        submit: Submit,
        boot: str,
        clock: ClockWatch,
    ) -> None:
        self.settings = settings
        self._sensors = sensors
        self._not_open = not_open
        self._submit = submit
        self._boot = boot
        self._clock = clock
        self.calibrations = ActiveCalibrations()
        self._store: CalibrationStore | None = None
        self.runner = TestRunner(
            settings.tests,
            TestContext(port=self._port, calibrations=self.calibrations),
            publish=self._publish,
        )
        self.commands: CommandDispatcher | None = None

    async def open(self) -> None:
        path = self.settings.storage.state_dir / CALIBRATION_FILE
        try:
            self._store = await asyncio.to_thread(CalibrationStore.open, path)
            self.calibrations.replace(await asyncio.to_thread(self._store.current))
        except CalibrationStoreError as exc:
            log.error("calibration unavailable, readings go out uncorrected: %s", exc)
            return
        for r in self.calibrations.records():
            log.info(
                "calibration %s of %s.%s in effect (gain %.6g, offset %.6g)",
                r.id,
                r.sensor,
                r.quantity,
                r.gain,
                r.offset,
            )

    def transform(self, sensor: str) -> Transform:
        return self.calibrations.reading_data(sensor)

    def attach(self, forwarder: Forwarder) -> None:
        """Answer remote commands through the forwarder's MQTT connection."""
        self.commands = CommandDispatcher(
            self.settings.device.id,
            runner=self.runner,
            calibrations=self.calibrations,
            publish=forwarder.publish_reply,
            boot=self._boot,
            sensors=[s.name for s in self.settings.sensors],
        )
        forwarder.commands = self.commands

    async def run(self) -> None:
        """Test schedules and the calibration watcher, until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(run_schedule(self.runner), name="sensor-tests")
            if self._store is not None:
                tasks.create_task(
                    watch_calibrations(self._store, self.calibrations, self._calibration_changed),
                    name="calibration-watch",
                )

    async def close(self) -> None:
        if self.commands is not None:
            await self.commands.close()
        if self._store is not None:
            self._store.close()

    def _port(self, name: str) -> SensorPort:
        loop = self._sensors.get(name)
        if loop is None:
            reason = self._not_open.get(name)
            raise CannotJudge(f"sensor {name} is not open" + (f": {reason}" if reason else " yet"))
        return loop

    def _event(self, kind: Any, sensor: str | None, data: dict[str, Any]) -> NewEvent:
        return NewEvent.now(kind, sensor, data, boot=self._boot, clock=self._clock.state)

    async def _publish(self, result: TestResult) -> None:
        await self._submit(self._event("test_result", result.sensor, result.event_data()))
        if result.status == "fail" and result.alarm:
            await self._submit(self._event("alarm", result.sensor, result.alarm_data()))

    async def _calibration_changed(self, records: list[CalibrationRecord]) -> None:
        for r in records:
            data = {
                "event": "calibration_changed",
                "quantity": r.quantity,
                "action": r.action,
                "cal": r.id if r.applies else None,
                "gain": r.gain,
                "offset": r.offset,
                "calibrated_at": r.calibrated_at,
                "expires_at": r.expires_at,
            }
            await self._submit(self._event("status", r.sensor, data))
