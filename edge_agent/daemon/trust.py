"""What makes a reading trustworthy, in the running daemon: calibration, sensor tests, remote commands.

:class:`SensorTrust` is wired into :class:`~edge_agent.daemon.main.Daemon` in a few lines:

- it opens the calibration database (``calibration.db`` in the state dir) and holds the
  corrections in effect; each :class:`~edge_agent.sampling.sampler.SensorLoop` gets
  :meth:`transform` to apply them, and :meth:`run` reloads them when the CLI saves a
  change (a ``status`` event ``calibration_changed`` says so, with the coefficients, so
  the cloud can map a reading's ``cal`` id back to raw values);
- it runs the ``[[tests]]`` on their schedules through the sensors' own worker threads,
  each result a ``test_result`` event;
- it keeps the alarms (:mod:`edge_agent.daemon.alarm_keeper`): failing tests with
  ``alarm = true``, sensors failed too long; raised once, reminded, cleared;
- it commits the test results ``edge-agent test run`` spooled (:mod:`edge_agent.spool`);
- it answers remote commands (:mod:`edge_agent.remote`) through the forwarder.

A broken calibration database never stops sampling: readings then go out uncorrected
(without ``cal`` ids, so the cloud can tell) and the problem is logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from edge_agent.alarms import AlarmBook
from edge_agent.calibration import (
    CALIBRATION_FILE,
    ActiveCalibrations,
    CalibrationStore,
    CalibrationStoreError,
)
from edge_agent.calibration.store import CalibrationRecord
from edge_agent.calibration.watch import watch_calibrations
from edge_agent.daemon.alarm_keeper import AlarmKeeper
from edge_agent.events import NewEvent
from edge_agent.outbox import OutboxError
from edge_agent.remote import CommandDispatcher, CommandStats
from edge_agent.sampling.clock_sync import ClockWatch
from edge_agent.sampling.health import HealthGuard
from edge_agent.sampling.sampler import SensorLoop, Transform
from edge_agent.sensor_tests.kinds import CannotJudge, SensorPort, TestContext
from edge_agent.sensor_tests.result import TestResult
from edge_agent.sensor_tests.runner import TestRunner
from edge_agent.sensor_tests.scheduler import run_schedule
from edge_agent.settings import Settings
from edge_agent.spool import watch_spool
from edge_agent.uplink import Forwarder
from edge_drivers.api import Quantity
from edge_protocol.wire import CalibrationChanged

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
        commit: Submit | None = None,
        clock: ClockWatch,
        guards: Mapping[str, HealthGuard] | None = None,
        configured: Callable[[], set[str]] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._sensors = sensors
        self._not_open = not_open
        self.alarm_keeper = AlarmKeeper(
            settings,
            send=lambda sensor, data: submit(self._event("alarm", sensor, data)),
            sensors=sensors,
            guards=guards if guards is not None else {},
            not_open=not_open,
            configured=configured or (lambda: {s.name for s in settings.sensors if s.enabled}),
            monotonic=monotonic,
            wall=wall,
        )
        self.alarms: AlarmBook = self.alarm_keeper.book
        self._submit = submit
        self._commit = commit or submit
        """For the CLI's spooled events: raises instead of dropping (the file is kept)."""
        self._spool_problem: str | None = None
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
        self.command_stats = CommandStats()
        """One count for the daemon's life, whichever forwarder (a reload makes a new one) answers."""

    async def open(self) -> None:
        await self.alarm_keeper.open()
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

    def transform(self, sensor: str, driver: object, quantities: Iterable[Quantity]) -> Transform:
        """Corrections, then what the driver derives from the corrected inputs, then rounding."""
        return self.calibrations.driver_data(sensor, driver, quantities)

    def attach(self, forwarder: Forwarder) -> None:
        """Answer remote commands through the forwarder's MQTT connection."""
        self.commands = CommandDispatcher(
            self.settings.device.id,
            runner=self.runner,
            calibrations=self.calibrations,
            publish=forwarder.publish_reply,
            boot=self._boot,
            sensors=[s.name for s in self.settings.sensors],
            stats=self.command_stats,
        )
        forwarder.commands = self.commands

    async def run(self) -> None:
        """Test schedules and the calibration watcher, until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(run_schedule(self.runner), name="sensor-tests")
            tasks.create_task(self.alarm_keeper.run(), name="alarms")
            tasks.create_task(
                watch_spool(self.settings.storage.state_dir, self._take_spooled), name="cli-events"
            )
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
        await self.alarm_keeper.judge_test(result)

    async def _take_spooled(self, event: NewEvent) -> object:
        """An event the CLI spooled: committed as it is; a test result also counts for its alarm.
        None when it was not committed (its spool file stays, see :func:`take_spool`)."""
        try:
            stored = await self._commit(event)
        except (OutboxError, ValueError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
            if problem != self._spool_problem:  # once per series: it is tried again every second
                log.error("a spooled CLI event was not committed, kept for the next try: %s", problem)
                self._spool_problem = problem
            return None
        self._spool_problem = None
        if stored is None:
            return None
        test = self.runner.get(str(event.data.get("test")))
        status = event.data.get("status")
        if event.kind != "test_result" or test is None or status not in ("pass", "fail", "error"):
            return stored
        await self.alarm_keeper.judge_test(
            TestResult(
                test=test.name,
                sensor=test.sensor,
                kind=test.kind,
                status=status,
                detail=str(event.data.get("detail", "")),
                measured={},
                limits={},
                duration_s=0.0,
                trigger="cli",
                alarm=test.alarm,
            )
        )
        return stored

    async def _calibration_changed(self, records: list[CalibrationRecord]) -> None:
        for r in records:
            data: CalibrationChanged = {
                "event": "calibration_changed",
                "quantity": r.quantity,
                "action": r.action,
                "cal": r.id if r.applies else None,
                "gain": r.gain,
                "offset": r.offset,
                "calibrated_at": r.calibrated_at,
                "expires_at": r.expires_at,
                "uncertainty": r.uncertainty if r.applies else None,
            }
            await self._submit(self._event("status", r.sensor, dict(data)))
