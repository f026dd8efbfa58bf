"""Per-sensor health and circuit breaker: one bad sensor never takes down the others.

States, and what moves a sensor between them::

            error                  N consecutive errors (after a recovery attempt on I2C)
     ok ───────────► degraded ──────────────────────────────────► failed  (breaker open:
      ▲                 │ good read                                  │     no reads)
      │◄────────────────┘                           probe due (backoff│ doubles, capped)
      │                                                              ▼
      └──────────── K good reads in a row ───────── recovering ◄── probe read ok
                                                        │ error
                                                        └──────────► failed

- ``degraded``: errors, but fewer than ``open_after`` in a row; it is still read on
  its normal schedule.
- ``failed``: the breaker is open; the sensor is not read (its ticks are counted as
  skipped) until the next probe, ``probe_after`` × 2^(opens−1) later, capped at
  ``probe_max``.
- ``recovering``: a probe (the half-open read) succeeded; readings flow again, and
  ``close_after`` good reads in a row make it ``ok``; one error opens the breaker again.

A read that ends in :class:`~edge_drivers.api.NotReadyError` (a PMS5003 warming up, a
BME280 that was reset and has just been configured again) is no reading and no error:
the state does not change, for up to ``not_ready_max`` seconds in a row.  After that each
further one counts as an error, so a sensor that never gets ready does fail.

On I2C, before the breaker opens and before every probe, the driver is rebuilt
(:data:`Rebuild`): the chip is probed again and its configuration rewritten, which
brings back a sensor that was reset by a brown-out or lost its settings.  A real bus
recovery (nine clock pulses to free a stuck SDA line) cannot be done from user space
through ``/dev/i2c-N``; the kernel's I2C adapter driver does that where it supports it.

:class:`SensorHealth` is the pure state machine (clock injected); :class:`HealthGuard`
plugs it into the :class:`~edge_agent.sampling.sampler.SensorLoop` and turns every change into a
log line, a ``status`` event (``{"event": "sensor_health", "state", "previous",
"reason", …}``) and the numbers metrics and ``edge-agent status`` show.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from edge_agent.errors import HardwareOpenError
from edge_drivers.api import DriverError, Sensor

if TYPE_CHECKING:
    from edge_agent.sampling.sampler import SensorLoop

log = logging.getLogger(__name__)

HealthState = Literal["ok", "degraded", "failed", "recovering"]
HEALTH_STATES: tuple[HealthState, ...] = ("ok", "degraded", "failed", "recovering")

Rebuild = Callable[[], Sensor]
"""Builds the sensor's driver again (blocking: probes the chip)."""
Announce = Callable[[str, dict[str, Any]], Awaitable[object]]
"""Commits a ``status`` event for a sensor: ``(sensor, data)``."""


@dataclass(frozen=True)
class BreakerPolicy:
    open_after: int = 5
    """Consecutive errors that open the breaker."""
    probe_after: float = 30.0
    """Seconds from opening to the first probe; doubles with every re-opening."""
    probe_max: float = 600.0
    close_after: int = 3
    """Good reads in a row, after a probe, before the sensor is ``ok`` again."""
    not_ready_max: float = 120.0
    """Seconds of "not ready" in a row tolerated before each counts as an error."""


@dataclass(frozen=True)
class Change:
    previous: HealthState
    state: HealthState
    reason: str | None


class SensorHealth:
    """The state machine of one sensor; see the module docstring."""

    def __init__(self, policy: BreakerPolicy, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self.state: HealthState = "ok"
        self.consecutive_errors = 0
        self.consecutive_ok = 0
        self.opens = 0
        """Times the breaker opened in the current series (resets when ``ok``)."""
        self.opened_total = 0
        self.probe_at: float | None = None
        self.reason: str | None = None
        self.since = clock()
        self.not_ready_since: float | None = None
        """When the current run of "not ready" answers began (None: the last read was not one)."""

    def probe_due(self) -> bool:
        """True when a read may be attempted: always, except while the breaker is open."""
        return self.state != "failed" or (self.probe_at is not None and self._clock() >= self.probe_at)

    def about_to_open(self) -> bool:
        """One more error would open the breaker (the moment for a recovery attempt)."""
        return self.state in ("ok", "degraded") and self.consecutive_errors + 1 >= self.policy.open_after

    def not_ready(self, reason: str) -> Change | None:
        """The sensor answered but has no valid value yet: tolerated for ``not_ready_max``."""
        now = self._clock()
        if self.not_ready_since is None:
            self.not_ready_since = now
        waited = now - self.not_ready_since
        if waited < self.policy.not_ready_max:
            return None
        return self.failed(f"not ready for {waited:.0f} s: {reason}")

    def succeeded(self) -> Change | None:
        self.not_ready_since = None
        self.consecutive_errors = 0
        self.consecutive_ok += 1
        if self.state == "degraded":
            return self._move("ok", None)
        if self.state == "failed":
            self.consecutive_ok = 1
            self.probe_at = None
            change = self._move("recovering", "probe read succeeded")
            if self.consecutive_ok >= self.policy.close_after:
                return self._close()
            return change
        if self.state == "recovering" and self.consecutive_ok >= self.policy.close_after:
            return self._close()
        return None

    def failed(self, reason: str, *, may_open: bool = True) -> Change | None:
        """Count an error; ``may_open=False`` holds the breaker shut for one more read
        (the driver was just rebuilt and deserves a try)."""
        self.consecutive_ok = 0
        self.consecutive_errors += 1
        self.reason = reason
        opens = self.state in ("recovering", "failed") or self.consecutive_errors >= self.policy.open_after
        if opens and may_open:
            return self._open(reason)
        if self.state == "ok":
            return self._move("degraded", reason)
        return None

    def seconds_to_probe(self) -> float | None:
        return None if self.probe_at is None else max(0.0, self.probe_at - self._clock())

    def _open(self, reason: str) -> Change | None:
        self.opens += 1
        self.opened_total += 1
        p = self.policy
        self.probe_at = self._clock() + min(p.probe_max, p.probe_after * 2 ** (self.opens - 1))
        return self._move("failed", reason)

    def _close(self) -> Change | None:
        self.opens = 0
        self.reason = None
        return self._move("ok", None)

    def _move(self, state: HealthState, reason: str | None) -> Change | None:
        if state == self.state:
            return None
        change = Change(self.state, state, reason)
        self.state = state
        self.since = self._clock()
        return change


class HealthGuard:
    """Gates a :class:`SensorLoop`'s reads through its :class:`SensorHealth`."""

    def __init__(
        self,
        sensor: str,
        health: SensorHealth,
        *,
        announce: Announce,
        rebuild: Rebuild | None = None,
        rebuild_timeout: float = 10.0,
    ) -> None:
        self.sensor = sensor
        self.health = health
        self._announce = announce
        self._rebuild = rebuild
        self._rebuild_timeout = rebuild_timeout
        self.rebuilds = 0
        self.rebuild_failures = 0
        self._rebuilt_in_series = False
        self.on_change: list[Callable[[str, Change], None]] = []
        """Called on every change (metrics); after the log line, before the event is committed."""

    async def admit(self, loop: SensorLoop) -> bool:
        """May ``loop`` read now?  A probe on I2C rebuilds the driver first."""
        h = self.health
        if not h.probe_due():
            return False
        if h.state == "failed" and self._rebuild is not None and not await self._rebuilt(loop):
            await self._changed(h.failed(h.reason or "driver rebuild failed"))  # backoff grows
            return False
        return True

    async def succeeded(self) -> None:
        self._rebuilt_in_series = False
        await self._changed(self.health.succeeded())

    async def not_ready(self, message: str) -> None:
        await self._changed(self.health.not_ready(message))

    async def failed(self, kind: str, message: str, loop: SensorLoop | None = None) -> None:
        """Count an error of ``kind``; on I2C the breaker opens only after a rebuild was tried."""
        h = self.health
        hold = False
        if (
            loop is not None
            and self._rebuild is not None
            and h.about_to_open()
            and not self._rebuilt_in_series
        ):
            # Last chance before the breaker opens: rebuild the driver, read once more.
            self._rebuilt_in_series = True
            hold = await self._rebuilt(loop)
        await self._changed(h.failed(message, may_open=not hold))

    async def _rebuilt(self, loop: SensorLoop) -> bool:
        assert self._rebuild is not None
        self.rebuilds += 1
        try:
            await loop.rebuild_driver(self._rebuild, self._rebuild_timeout)
        except (DriverError, HardwareOpenError, TimeoutError) as exc:
            self.rebuild_failures += 1
            self.health.reason = f"driver rebuild failed: {type(exc).__name__}: {exc}"
            log.debug("sensor %s: %s", self.sensor, self.health.reason)
            return False
        log.info("sensor %s: driver rebuilt (chip probed and configured again)", self.sensor)
        return True

    async def _changed(self, change: Change | None) -> None:
        if change is None:
            return
        h = self.health
        level = logging.WARNING if change.state in ("degraded", "failed") else logging.INFO
        next_probe = h.seconds_to_probe()
        log.log(
            level,
            "sensor %s: health %s -> %s%s%s",
            self.sensor,
            change.previous,
            change.state,
            f" ({change.reason})" if change.reason else "",
            f"; next probe in {next_probe:.0f} s" if next_probe is not None else "",
        )
        for callback in self.on_change:
            callback(self.sensor, change)
        await self._announce(self.sensor, health_event(change, h.consecutive_errors, next_probe))


def health_event(change: Change, consecutive_errors: int, next_probe: float | None = None) -> dict[str, Any]:
    """The ``data`` of the ``sensor_health`` status event (docs/PROTOCOL.md)."""
    data: dict[str, Any] = {
        "event": "sensor_health",
        "state": change.state,
        "previous": change.previous,
        "reason": change.reason,
        "consecutive_errors": consecutive_errors,
    }
    if next_probe is not None:
        data["next_probe_s"] = round(next_probe, 1)
    return data
