"""Samples every configured sensor on its own interval and hands readings on as events.

Where a reading is taken: :class:`SensorLoop` calls the driver's ``read()`` on the
sensor's worker thread (never on the event loop) with a timeout, on a fixed-rate
schedule that skips missed ticks rather than bursting to catch up.  Each good reading
becomes a ``reading`` :class:`~edge_agent.events.NewEvent` and is handed to ``emit``
(the outbox writer), which returns once it is committed.  Sampling never waits on the
network: the uplink reads from the outbox on its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from edge_agent.events import NewEvent
from edge_agent.sampling.clock_sync import ClockWatch
from edge_agent.sampling.worker import SensorAccess
from edge_drivers.api import DriverError, NotReadyError, Sensor

T = TypeVar("T")

log = logging.getLogger(__name__)

Emit = Callable[[NewEvent], Awaitable[object]]
Transform = Callable[[Mapping[str, float]], dict[str, Any]]
"""Turns a driver's values into a reading's ``data`` (calibration corrections, their ids)."""


@dataclass
class SensorCounters:
    reads: int = 0
    errors: int = 0
    timeouts: int = 0
    skipped_busy: int = 0
    skipped_open: int = 0
    """Ticks not read because the sensor's circuit breaker is open."""
    not_ready: int = 0
    """Reads answered "not ready" (warming up, recovering from a chip reset): no reading, no error."""
    errors_by_kind: Counter[str] = field(default_factory=Counter)
    """Failed reads by kind: the driver error's class name, ``timeout``, ``busy``, ``driver_bug``."""
    last_ok_mono: float | None = None
    last_error: str | None = None


class ReadGuard(Protocol):
    """Decides whether a sensor is read and hears how each read went (its health)."""

    async def admit(self, loop: SensorLoop) -> bool: ...

    async def succeeded(self) -> None: ...

    async def failed(self, kind: str, message: str, loop: SensorLoop | None = None) -> None: ...

    async def not_ready(self, message: str) -> None: ...


class SensorLoop:
    """The sampling schedule of one sensor."""

    def __init__(
        self,
        name: str,
        driver: Sensor,
        *,
        interval: float,
        timeout: float,
        emit: Emit,
        boot: str,
        clock: ClockWatch,
        monotonic: Callable[[], float] = time.monotonic,
        transform: Transform = dict,
        guard: ReadGuard | None = None,
    ) -> None:
        self.name = name
        self.driver = driver
        self.interval = interval
        self.timeout = timeout
        self.counters = SensorCounters()
        self._emit = emit
        self._boot = boot
        self._clock = clock
        self._monotonic = monotonic
        self._access = SensorAccess(name, driver, timeout)
        self._worker = self._access.worker
        self._transform = transform
        self.guard = guard

    async def run(self) -> None:
        next_tick = self._monotonic()
        try:
            while True:
                delay = next_tick - self._monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await self.sample_once()
                next_tick += self.interval
                now = self._monotonic()
                if next_tick < now:  # fell behind (slow sensor, suspended host): skip, do not burst
                    next_tick = now + self.interval - (now - next_tick) % self.interval
        finally:
            self._worker.stop()

    async def call(self, fn: Callable[[], T], timeout: float | None = None) -> T:
        """``fn()`` on this sensor's worker between two samples (how sensor tests read)."""
        return await self._access.call(fn, timeout)

    async def rebuild_driver(self, build: Callable[[], Any], timeout: float) -> None:
        """Replace the driver with ``build()``, run on this sensor's worker (a hung bus holds
        up this sensor only).  Called from within a sample, i.e. in turn; ``TimeoutError``
        if the worker is still busy with a hung call."""
        if self._worker.busy:
            raise TimeoutError(f"sensor {self.name}: its worker is still busy with a hung call")
        driver = await self._worker.call(build, timeout)
        self.driver = self._access.driver = driver

    async def sample_once(self) -> NewEvent | None:
        """Take one reading; returns the event handed on, or None if there was none."""
        async with self._access.turn:  # sensor tests' reads take turns with sampling
            return await self._sample_once()

    async def _sample_once(self) -> NewEvent | None:
        c = self.counters
        if self.guard is not None and not await self.guard.admit(self):
            c.skipped_open += 1
            return None
        if self._worker.busy:
            c.skipped_busy += 1
            await self._failed("busy", f"previous read still running after {self.timeout:g} s (driver hung?)")
            return None
        try:
            values = await self._worker.call(self.driver.read, self.timeout)
        except TimeoutError:
            c.timeouts += 1
            await self._failed("timeout", f"read took longer than {self.timeout:g} s (driver hung?)")
            return None
        except NotReadyError as exc:
            c.not_ready += 1
            await self._failed(type(exc).__name__, f"{type(exc).__name__}: {exc}", not_ready=True)
            return None
        except DriverError as exc:
            c.errors += 1
            await self._failed(type(exc).__name__, f"{type(exc).__name__}: {exc}")
            return None
        except Exception as exc:  # a driver bug (third-party code): this sensor fails, the daemon goes on
            c.errors += 1
            if c.last_error is None or not c.last_error.startswith("driver bug"):
                log.exception("sensor %s: driver raised a non-driver error", self.name)
            await self._failed("driver_bug", f"driver bug: {type(exc).__name__}: {exc}")
            return None
        c.reads += 1
        c.last_ok_mono = self._monotonic()
        c.last_error = None
        if self.guard is not None:
            await self.guard.succeeded()
        event = self._reading(values)
        await self._emit(event)
        return event

    def _reading(self, values: Mapping[str, float]) -> NewEvent:
        return NewEvent.now(
            "reading",
            self.name,
            self._transform(values),
            boot=self._boot,
            clock=self._clock.state,
            mono=self._monotonic(),
        )

    async def _failed(self, kind: str, message: str, *, not_ready: bool = False) -> None:
        # Log the first failure and changes of reason, not every repetition.
        if message != self.counters.last_error:
            log.log(logging.INFO if not_ready else logging.WARNING, "sensor %s: %s", self.name, message)
        self.counters.last_error = message
        self.counters.errors_by_kind[kind] += 1
        if self.guard is None:
            return
        if not_ready:
            await self.guard.not_ready(message)
        else:
            await self.guard.failed(kind, message, self)
