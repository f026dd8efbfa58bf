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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field

from drivers.api import Sensor
from drivers.errors import DriverError
from edge_agent import __version__
from edge_agent.clock_sync import ClockWatch
from edge_agent.driver_registry import DriverRegistry, load_registry
from edge_agent.errors import ConfigError, ConfigProblem, HardwareOpenError
from edge_agent.events import NewEvent
from edge_agent.hardware import Hardware
from edge_agent.outbox.store import Outbox
from edge_agent.outbox.writer import OutboxWriter
from edge_agent.protocol import boot_id
from edge_agent.sampler import SensorLoop
from edge_agent.sensor_trust import SensorTrust
from edge_agent.settings import SensorSettings, Settings
from edge_agent.uplink import Forwarder

log = logging.getLogger(__name__)

CLOCK_POLL_S = 10.0
SHUTDOWN_UPLINK_S = 8.0
SHUTDOWN_FLUSH_S = 2.0
OPEN_RETRY_MIN_S = 5.0
OPEN_RETRY_MAX_S = 300.0


@dataclass
class DaemonState:
    """What the running daemon is doing (read by status and metrics)."""

    sensors: dict[str, SensorLoop] = field(default_factory=dict)
    sensors_not_open: dict[str, str] = field(default_factory=dict)


class Daemon:
    """One run of the agent: open everything, run until asked to stop, close everything."""

    def __init__(self, settings: Settings, *, registry: DriverRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry or load_registry()
        self.boot = boot_id()
        self.clock = ClockWatch(settings.device.clock_check)
        self.state = DaemonState()
        self.trust: SensorTrust | None = None
        self._stop = asyncio.Event()

    def request_stop(self) -> None:
        self._stop.set()

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
        )
        log.info(
            "outbox %s open: epoch %s, %d events pending, next seq %d",
            outbox.path,
            outbox.epoch,
            outbox.pending_count,
            outbox.next_seq,
        )
        writer = OutboxWriter(outbox)
        forwarder = Forwarder(outbox, settings.mqtt, device_id=settings.device.id, boot=self.boot)
        trust = self.trust = SensorTrust(
            settings,
            sensors=self.state.sensors,
            not_open=self.state.sensors_not_open,
            submit=writer.submit_or_drop,  # a full disk must not end the daemon
            boot=self.boot,
            clock=self.clock,
        )
        await trust.open()
        trust.attach(forwarder)
        hardware = Hardware(self.registry)
        try:
            async with asyncio.TaskGroup() as tasks:
                writing = tasks.create_task(writer.run(), name="outbox-writer")
                await writer.submit(self._status_event("started"))
                uplink = tasks.create_task(forwarder.run(), name="uplink")
                clock = tasks.create_task(self._watch_clock(outbox), name="clock-watch")
                checks = tasks.create_task(trust.run(), name="sensor-trust")
                sampling = [
                    tasks.create_task(self._sensor(s, hardware, writer), name=f"sensor-{s.name}")
                    for s in settings.sensors
                    if s.enabled
                ]
                await self._stop.wait()
                log.info("stopping: sampling ends, committed events are flushed")
                for task in [*sampling, clock, checks]:
                    task.cancel()
                await _bounded(
                    "sampling to stop", asyncio.gather(*sampling, clock, checks, return_exceptions=True), 3
                )
                # Every step is bounded: systemd expects us gone within TimeoutStopSec, and
                # anything not yet committed was never promised; what is committed stays.
                await _bounded(
                    "committing the stopping status", writer.submit(self._status_event("stopping")), 3
                )
                await _bounded("the outbox writer", writer.stop(), 5)
                await _bounded(
                    "publishing what is committed", _until_sent(outbox, forwarder), SHUTDOWN_FLUSH_S
                )
                await _bounded("the uplink", forwarder.stop(), SHUTDOWN_UPLINK_S)
                await _bounded("the uplink task", asyncio.shield(uplink), 2)
                for task in (writing, uplink, *sampling, clock, checks):  # again: one may have missed it
                    task.cancel()
        finally:
            await trust.close()
            hardware.close()
            await outbox.close()
        log.info("stopped")

    def _status_event(self, state: str) -> NewEvent:
        data = {"state": state, "version": __version__, "sensors": [s.name for s in self.settings.sensors]}
        return NewEvent.now("status", None, data, boot=self.boot, clock=self.clock.state)

    async def _sensor(self, sensor: SensorSettings, hardware: Hardware, writer: OutboxWriter) -> None:
        """Open the sensor (retrying with backoff while it is absent), then sample it forever."""
        driver = await self._open_sensor(sensor, hardware)
        loop = SensorLoop(
            sensor.name,
            driver,
            interval=sensor.interval,
            timeout=sensor.timeout,
            emit=writer.submit_or_drop,
            boot=self.boot,
            clock=self.clock,
            transform=self.trust.transform(sensor.name) if self.trust else dict,
        )
        self.state.sensors[sensor.name] = loop
        await loop.run()

    async def _open_sensor(self, sensor: SensorSettings, hardware: Hardware) -> Sensor:
        delay = OPEN_RETRY_MIN_S
        while True:
            try:
                # Probing a chip blocks on the bus: keep it off the event loop.
                async with asyncio.timeout(max(sensor.timeout, 10.0)):  # not wait_for: see SensorWorker.call
                    driver: Sensor = await asyncio.to_thread(hardware.open_sensor, sensor)
            except (DriverError, HardwareOpenError, TimeoutError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
                if self.state.sensors_not_open.get(sensor.name) != reason:
                    log.error(
                        "sensor %s cannot be opened (retrying every ≤%.0f s): %s", sensor.name, delay, reason
                    )
                self.state.sensors_not_open[sensor.name] = reason
                await asyncio.sleep(delay)
                delay = min(delay * 2, OPEN_RETRY_MAX_S)
                continue
            if self.state.sensors_not_open.pop(sensor.name, None) is not None:
                log.info("sensor %s is open now", sensor.name)
            return driver

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
        await asyncio.wait_for(step, timeout)
    except TimeoutError:
        log.error("shutdown: %s did not finish within %.0f s; abandoning it", what, timeout)
    else:
        elapsed = time.monotonic() - started
        if elapsed > 1.0:
            log.info("shutdown: %s took %.1f s", what, elapsed)


async def run_daemon(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT."""
    daemon = Daemon(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.request_stop)
    try:
        await daemon.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
