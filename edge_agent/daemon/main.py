"""``edge-agent run``: wires sampling, the outbox and the uplink into one asyncio process.

Data flow, and the guarantee at each step::

    SensorLoop ──NewEvent──► OutboxWriter ──(one transaction, fsync)──► Outbox (SQLite)
                                                                           │
              Forwarder ◄──────────── fetch by lane ◄──────────────────────┘
                 │ publish QoS 1 ──► broker ──► (ingest stores, publishes acks)
                 └── delete from the outbox only on PUBACK / ingest ack

Sampling only waits for the local commit, never for the network.  On SIGTERM/SIGINT:
sampling stops, the writer commits what is queued, the uplink waits briefly for the
acknowledgements of what is in flight and disconnects cleanly, and the process exits 0.

As a service (:mod:`edge_agent.service`): READY=1 once the outbox is open and every
sensor has had its first open attempt; WATCHDOG=1 while every stage progresses; SIGHUP
reloads the configuration; the status socket and the metrics endpoint report on it all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from edge_agent import __version__
from edge_agent.daemon.trust import SensorTrust
from edge_agent.errors import ConfigError, ConfigProblem, HardwareOpenError
from edge_agent.events import NewEvent
from edge_agent.identity.renewal import renewal_loop
from edge_agent.outbox.drops import announce_drops, announce_once
from edge_agent.outbox.drops_saved import carry_saved_drops, keep_unannounced_drops
from edge_agent.outbox.store import Outbox
from edge_agent.outbox.writer import OutboxWriter
from edge_agent.sampling.clock_sync import ClockWatch
from edge_agent.sampling.handover import HandOver
from edge_agent.sampling.hardware import Hardware
from edge_agent.sampling.health import BreakerPolicy, Change, HealthGuard, SensorHealth, health_event
from edge_agent.sampling.registry import DriverRegistry, load_registry
from edge_agent.sampling.sampler import SensorLoop
from edge_agent.service import stages
from edge_agent.service.metrics import LOOP_ANSWER_S, Metrics, on_loop, start_metrics
from edge_agent.service.notify import Notifier
from edge_agent.service.reload import ReloadHooks, apply_reload
from edge_agent.service.sensor_set import SensorSet
from edge_agent.service.snapshot import daemon_snapshot, status_line
from edge_agent.service.state import DaemonState
from edge_agent.service.status_server import StatusServer, status_socket
from edge_agent.service.watchdog import ProgressMonitor, keep_alive
from edge_agent.settings import MQTTSettings, SensorSettings, Settings
from edge_agent.uplink import Forwarder
from edge_agent.uplink.views import SubscriberViews
from edge_drivers.api import DriverError, Sensor
from edge_protocol.wire import boot_id

log = logging.getLogger(__name__)
T = TypeVar("T")

CLOCK_POLL_S = 10.0
SHUTDOWN_UPLINK_S = 8.0
SHUTDOWN_FLUSH_S = 2.0
OPEN_RETRY_MIN_S = 5.0
OPEN_RETRY_MAX_S = 300.0
READY_WAIT_MAX_S = 30.0
DELETE_WAIT = 2.0
"""An acknowledged delete waits up to this many commit windows for an append to carry it."""


class Daemon:
    """One run of the agent: open everything, run until asked to stop, close everything."""

    def __init__(
        self,
        settings: Settings,
        *,
        registry: DriverRegistry | None = None,
        config_path: Path | None = None,
        hardware: Hardware | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.settings = settings
        self.config_path = config_path
        self.registry = registry or load_registry()
        self.boot = boot_id()
        self.clock = ClockWatch(settings.device.clock_check)
        self.state = DaemonState()
        self.hardware = hardware or Hardware(self.registry)
        self.notifier = notifier or Notifier()
        self.monitor = ProgressMonitor()
        self.metrics: Metrics | None = None
        self.reload_hooks = ReloadHooks()
        """Callbacks ``(old, new)`` run after each applied SIGHUP reload."""
        self.trust: SensorTrust | None = None
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._attempted: set[str] = set()
        self._sensors_attempted = asyncio.Event()
        self._emit: Any = None
        self._sample_emit: Any = None
        self._tasks: asyncio.TaskGroup | None = None
        self._uplink: asyncio.Task[None] | None = None

    def request_stop(self) -> None:
        self._stop.set()

    def request_reload(self) -> None:
        self._reload.set()

    def snapshot(self) -> dict[str, Any]:
        """The status picture (on the event loop); see :mod:`edge_agent.service.snapshot`."""
        path = str(self.config_path) if self.config_path else None
        return daemon_snapshot(self.settings, self.state, self.clock, config_path=path)

    async def run(self) -> None:
        settings = self.settings
        state_dir = settings.storage.state_dir
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            problem = ConfigProblem(
                "storage", "storage.state_dir", f"cannot create {state_dir}: {exc.strerror}"
            )
            raise ConfigError([problem]) from exc
        outbox = await Outbox.open(
            state_dir / settings.storage.outbox_file,
            max_bytes=settings.storage.max_bytes,
            max_age_s=settings.storage.max_age,
            boot=self.boot,
            clock_state=lambda: self.clock.state,
            # How long a commit waits for a lock another process holds before its events drop.
            pragmas={"busy_timeout": round(settings.storage.commit_timeout * 1000)},
            # Twice the window: the next append (at most a window after the first reading
            # following a commit) carries the delete, instead of a commit of its own.
            delete_window=DELETE_WAIT * settings.storage.commit_interval,
        )
        log.info(
            "outbox %s open: epoch %s, %d events pending, next seq %d",
            outbox.path,
            outbox.epoch,
            outbox.pending_count,
            outbox.next_seq,
        )
        writer = OutboxWriter(outbox, interval=settings.storage.commit_interval)
        carry_saved_drops(state_dir, writer.drops)
        self.state.outbox, self.state.writer = outbox, writer
        self._emit = writer.submit_or_drop  # an outbox that refuses an event must not end the daemon
        # With a commit window a sampler must not wait for its reading's commit: it would tick late.
        self._sample_emit = HandOver(self.emit) if settings.storage.commit_interval > 0 else self.emit
        self._start_metrics()
        views = SubscriberViews(
            lambda: self.settings, lambda: self.state.forwarder.connection if self.state.forwarder else None
        )
        self._emit = views.tap(self._emit)  # [mqtt] latest, [homeassistant]: off, it only looks
        trust = self.trust = SensorTrust(
            settings,
            sensors=self.state.sensors,
            not_open=self.state.sensors_not_open,
            submit=self._emit,
            commit=self._counted(writer.submit),  # a spooled event not committed stays spooled, not a drop
            boot=self.boot,
            clock=self.clock,
            guards=self.state.guards,
            configured=lambda: {s.name for s in self.settings.sensors if s.enabled},
        )
        self.state.alarms = trust.alarms
        await trust.open()
        forwarder = self._new_forwarder(settings.mqtt)
        status = StatusServer(status_socket(state_dir), self.snapshot)
        hardware = self.hardware
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                writing = tasks.create_task(writer.run(), name="outbox-writer")
                await self._emit(self._status_event("started"))
                self._uplink = tasks.create_task(forwarder.run(), name="uplink")
                clock = tasks.create_task(self._watch_clock(outbox), name="clock-watch")
                checks = tasks.create_task(trust.run(), name="sensor-trust")
                renewal = tasks.create_task(renewal_loop(state_dir), name="certificate-renewal")
                drops = tasks.create_task(self._announce_drops(writer), name="drop-announcer")
                stages.watch_writer(self.monitor, writer)
                sensors = SensorSet(
                    lambda s: self._sensor(s, hardware, writer), lambda c, n: tasks.create_task(c, name=n)
                )
                sensors.start_all(settings.sensors)
                await status.start()
                await self._until_sensors_attempted(settings)
                self.state.run_state = "running"
                summary = status_line(self.snapshot())
                self.notifier.ready(summary)
                log.info("ready: %s", summary)
                service = [
                    tasks.create_task(
                        keep_alive(
                            self.notifier,
                            self.monitor,
                            lambda: status_line(self.snapshot()),
                            record=self._stalls,
                        ),
                        name="watchdog",
                    ),
                    tasks.create_task(self._reloads(sensors), name="reload"),
                ]
                await self._stop.wait()
                writer.hurry()  # what is still sampled, and the stopping status, commit at once
                self.state.run_state = "stopping"
                self.notifier.stopping()
                log.info("stopping: sampling ends, committed events are flushed")
                for task in [*service, clock, checks, renewal, drops]:
                    task.cancel()
                await _bounded("sampling to stop", sensors.stop_all(), 3)
                await _bounded(
                    "background tasks to stop",
                    asyncio.gather(*service, clock, checks, renewal, drops, return_exceptions=True),
                    3,
                )
                await _bounded("announcing dropped events", self._announce_drops_once(writer), 3)
                # Every step is bounded: systemd expects us gone within TimeoutStopSec, and
                # anything not yet committed was never promised; what is committed stays.
                await _bounded(
                    "committing the stopping status", self._emit(self._status_event("stopping")), 3
                )
                await _bounded("the outbox writer", writer.stop(), 5)
                await _bounded("committing acknowledged deletes", outbox.appends_done(), 3)
                keep_unannounced_drops(state_dir, writer.drops)  # the stopping status may be one
                forwarder = self.state.forwarder or forwarder  # a reload may have replaced it
                uplink = self._uplink
                assert uplink is not None
                await _bounded(
                    "publishing what is committed", _until_sent(outbox, forwarder), SHUTDOWN_FLUSH_S
                )
                await _bounded("the uplink", forwarder.stop(), SHUTDOWN_UPLINK_S)
                await _bounded("the uplink task", asyncio.shield(uplink), 2)
                for task in (
                    writing,
                    uplink,
                    *service,
                    clock,
                    checks,
                    renewal,
                    drops,
                ):  # again: one may have missed it
                    task.cancel()
        finally:
            await trust.close()
            await status.stop()
            if self.metrics is not None:
                self.metrics.close()
            hardware.close()
            await outbox.close()
        log.info("stopped")

    def _start_metrics(self) -> None:
        loop = asyncio.get_running_loop()
        metrics = start_metrics(self.settings.metrics, lambda: on_loop(loop, self.snapshot, LOOP_ANSWER_S))
        if metrics is None:
            return
        self.state.metrics_url = metrics.url
        self.metrics = metrics
        self._emit = metrics.counting(self._emit)
        if self.state.outbox is not None:
            metrics.follow_gap_events(self.state.outbox)

    async def _announce_drops(self, writer: OutboxWriter) -> None:
        await announce_drops(writer.drops, self._counted(writer.submit), self.device_gap)

    async def _announce_drops_once(self, writer: OutboxWriter) -> None:
        await announce_once(writer.drops, self._counted(writer.submit), self.device_gap)

    def _counted(self, submit: Callable[[NewEvent], Awaitable[T]]) -> Callable[[NewEvent], Awaitable[T]]:
        """``submit`` counted by the metrics (when they run) like every emitted event."""
        return self.metrics.counting(submit) if self.metrics is not None else submit

    def device_gap(self, data: dict[str, Any]) -> NewEvent:
        """A ``gap`` event made by the daemon (events it dropped: see edge_agent.outbox.drops)."""
        return NewEvent.now("gap", None, data, boot=self.boot, clock=self.clock.state)

    def _new_forwarder(self, mqtt: MQTTSettings) -> Forwarder:
        """A forwarder on ``mqtt``, wired to metrics, remote commands and the watchdog."""
        assert self.state.outbox is not None
        forwarder = Forwarder(self.state.outbox, mqtt, device_id=self.settings.device.id, boot=self.boot)
        if self.metrics is not None:
            forwarder.latency_observers.append(self.metrics.publish_latency.observe)
        if self.trust is not None:
            self.trust.attach(forwarder)
            self.state.commands = self.trust.command_stats
        stages.watch_uplink(self.monitor, forwarder, self.state.outbox, mqtt)
        self.state.forwarder = forwarder
        return forwarder

    async def replace_uplink(self, mqtt: MQTTSettings) -> None:
        """[mqtt] changed on reload: disconnect cleanly, connect with the new settings.
        What was in flight stays in the outbox and goes again (duplicates, never gaps)."""
        old, task = self.state.forwarder, self._uplink
        assert old is not None and task is not None and self._tasks is not None
        await _bounded("the old uplink", old.stop(), SHUTDOWN_UPLINK_S)
        await _bounded("the old uplink task", asyncio.shield(task), 2)
        task.cancel()
        forwarder = self._new_forwarder(mqtt)
        self._uplink = self._tasks.create_task(forwarder.run(), name="uplink")

    def _stalls(self, stalls: list[Any]) -> None:
        self.state.stalls = stalls

    async def _until_sensors_attempted(self, settings: Settings) -> None:
        """READY=1 waits until every sensor was opened or failed to open once (bounded)."""
        if {s.name for s in settings.sensors if s.enabled} <= self._attempted:
            return
        try:
            async with asyncio.timeout(READY_WAIT_MAX_S):
                await self._sensors_attempted.wait()
        except TimeoutError:
            log.warning(
                "some sensors are still being opened after %.0f s; reporting ready anyway", READY_WAIT_MAX_S
            )

    def _attempted_open(self, name: str) -> None:
        self._attempted.add(name)
        if {s.name for s in self.settings.sensors if s.enabled} <= self._attempted:
            self._sensors_attempted.set()

    async def _reloads(self, sensors: SensorSet) -> None:
        while True:
            await self._reload.wait()
            self._reload.clear()
            writer = self.state.writer
            assert writer is not None
            async with writer.window_closed():  # what waits in the commit window first, and
                await writer.flush()  # the reload's own events are not kept waiting
                await apply_reload(self, sensors)

    async def emit(self, event: NewEvent) -> object:
        """Commit ``event`` (counted by the metrics when they run)."""
        return await self._emit(event)

    def device_event(self, data: dict[str, Any]) -> NewEvent:
        """A device-level ``status`` event."""
        return NewEvent.now("status", None, data, boot=self.boot, clock=self.clock.state)

    def _status_event(self, state: str) -> NewEvent:
        return self.device_event(
            {"state": state, "version": __version__, "sensors": [s.name for s in self.settings.sensors]}
        )

    async def _sensor(self, sensor: SensorSettings, hardware: Hardware, writer: OutboxWriter) -> None:
        """Open the sensor (retrying with backoff while it is absent), then sample it forever."""
        try:
            driver = await self._open_sensor(sensor, hardware)
            guard = self._guard(sensor, hardware)
            loop = SensorLoop(
                sensor.name,
                driver,
                interval=sensor.interval,
                timeout=sensor.timeout,
                emit=self._sample_emit,
                boot=self.boot,
                clock=self.clock,
                guard=guard,
                transform=self.trust.transform(sensor.name, driver, hardware.quantities(sensor))
                if self.trust
                else dict,
            )
            self.state.sensors[sensor.name] = loop
            self.state.guards[sensor.name] = guard
            stages.watch_sensor(self.monitor, loop)
            await loop.run()
        finally:
            # Stopped by a reload or at shutdown: it no longer exists for status or the watchdog.
            self.monitor.forget(stages.sampling_stage(sensor.name))
            self.state.sensors.pop(sensor.name, None)
            self.state.guards.pop(sensor.name, None)
            self.state.sensors_not_open.pop(sensor.name, None)

    def _guard(self, sensor: SensorSettings, hardware: Hardware) -> HealthGuard:
        h = self.settings.health
        policy = BreakerPolicy(h.open_after, h.probe_after, h.probe_max, h.close_after, h.not_ready_max)
        # On I2C a failing sensor's driver is rebuilt (chip probed and configured again).
        rebuild = (lambda: hardware.open_sensor(sensor)) if sensor.bus is not None else None
        guard = HealthGuard(
            sensor.name,
            SensorHealth(policy),
            announce=self._announce,
            rebuild=rebuild,
            rebuild_timeout=max(sensor.timeout, 10.0),
        )
        if self.metrics is not None:
            guard.on_change.append(self.metrics.health_changed)
        return guard

    async def _announce(self, sensor: str, data: dict[str, Any]) -> None:
        await self._emit(NewEvent.now("status", sensor, data, boot=self.boot, clock=self.clock.state))

    async def _open_sensor(self, sensor: SensorSettings, hardware: Hardware) -> Sensor:
        delay = OPEN_RETRY_MIN_S
        while True:
            try:
                # Probing a chip blocks on the bus: keep it off the event loop.
                async with asyncio.timeout(max(sensor.timeout, 10.0)):  # not wait_for: see SensorWorker.call
                    driver: Sensor = await asyncio.to_thread(hardware.open_sensor, sensor)
            except (DriverError, HardwareOpenError, TimeoutError) as exc:
                self._attempted_open(sensor.name)
                reason = f"{type(exc).__name__}: {exc}"
                previous = self.state.sensors_not_open.get(sensor.name)
                if previous != reason:
                    log.error(
                        "sensor %s cannot be opened (retrying every ≤%.0f s): %s", sensor.name, delay, reason
                    )
                self.state.sensors_not_open[sensor.name] = reason
                if previous is None:  # status shows it failed: the cloud and the metrics learn it too
                    await self._open_health(sensor.name, Change("ok", "failed", reason))
                await asyncio.sleep(delay)
                delay = min(delay * 2, OPEN_RETRY_MAX_S)
                continue
            if self.state.sensors_not_open.pop(sensor.name, None) is not None:
                log.info("sensor %s is open now", sensor.name)
                await self._open_health(sensor.name, Change("failed", "ok", "opened"))
            self._attempted_open(sensor.name)
            return driver

    async def _open_health(self, sensor: str, change: Change) -> None:
        """A sensor that cannot be opened is ``failed`` before it has a health guard."""
        if self.metrics is not None:
            self.metrics.health_changed(sensor, change)
        await self._announce(sensor, health_event(change, 0))

    async def _watch_clock(self, outbox: Outbox) -> None:
        while True:
            await asyncio.sleep(CLOCK_POLL_S)
            if self.clock.poll():
                fixed = await outbox.correct_unsynced(self.boot, self.clock.wall_minus_mono())
                log.info("corrected the timestamps of %d events taken before the clock synced", fixed)


async def _until_sent(outbox: Outbox, forwarder: Forwarder) -> None:
    """While the uplink is connected, wait for the outbox to empty (what is left goes next start)."""
    while outbox.pending_count > 0 and forwarder.stats.state == "connected":
        await asyncio.sleep(0.05)


async def _bounded(what: str, step: Awaitable[object], timeout: float) -> None:
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            await step
    except TimeoutError:
        log.error("shutdown: %s did not finish within %.0f s; abandoning it", what, timeout)
    else:
        elapsed = time.monotonic() - started
        if elapsed > 1.0:
            log.info("shutdown: %s took %.1f s", what, elapsed)


async def run_daemon(settings: Settings, config_path: Path | None = None) -> None:
    """Run until SIGTERM or SIGINT; SIGHUP reloads ``config_path``."""
    daemon = Daemon(settings, config_path=config_path)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.request_stop)
    loop.add_signal_handler(signal.SIGHUP, daemon.request_reload)
    try:
        await daemon.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
