"""Plausible physical values for simulators: slow drift, a daily-ish cycle, a little noise.

A :class:`Signal` is sampled at the simulator clock's time, so a test with a
:class:`edge_drivers.clock.ManualClock` gets reproducible values.  Faults used by sensor
tests and fault-injection tests are switched on per signal (:class:`SignalFaults`):
a stuck value, extra noise, spikes, and a linear drift away from the truth.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass

from edge_drivers.clock import SYSTEM_CLOCK, Clock


@dataclass
class SignalFaults:
    """Faults a simulated quantity can show.  All off by default."""

    stuck: bool = False
    """The value freezes at whatever it was when the fault was switched on."""
    noise: float = 0.0
    """Standard deviation of extra Gaussian noise added to every sample."""
    spike_probability: float = 0.0
    """Chance per sample of a spike of ``spike_size`` (random sign)."""
    spike_size: float = 0.0
    drift_per_s: float = 0.0
    """A linear error that grows with time since the fault was switched on."""


class Signal:
    """A value around ``base``: a slow sine, a bounded random walk and sensor noise."""

    def __init__(
        self,
        base: float,
        *,
        amplitude: float = 0.0,
        period_s: float = 600.0,
        walk: float = 0.0,
        noise: float = 0.0,
        lo: float = -math.inf,
        hi: float = math.inf,
        seed: int | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.base = base
        self.amplitude = amplitude
        self.period_s = period_s
        self.walk = walk
        self.noise = noise
        self.lo = lo
        self.hi = hi
        self.faults = SignalFaults()
        self._clock = clock
        self._rng = random.Random(seed)
        self._phase = self._rng.uniform(0, 2 * math.pi)
        self._offset = 0.0
        self._last_t = clock.monotonic()
        self._start = self._last_t
        self._fault_since = self._last_t
        self._stuck_value: float | None = None
        self._leader: Signal | None = None
        self._lock = threading.Lock()

    def follow(self, leader: Signal) -> None:
        """Take the truth from ``leader`` (two sensors in the same air); own noise and faults stay."""
        if leader is self or leader._leader is not None:
            raise ValueError("a signal follows a leader that follows nobody")
        self._leader = leader

    def set_faults(self, **changes: float | bool) -> None:
        """Switch faults on or off, e.g. ``set_faults(stuck=True)``."""
        with self._lock:
            for name, value in changes.items():
                if not hasattr(self.faults, name):
                    raise ValueError(f"unknown signal fault {name!r}")
                setattr(self.faults, name, value)
            self._fault_since = self._clock.monotonic()
            self._stuck_value = None

    def clear_faults(self) -> None:
        with self._lock:
            self.faults = SignalFaults()
            self._stuck_value = None

    def true_value(self) -> float:
        """The simulated truth at the current time, without noise or faults."""
        with self._lock:
            return self._truth(self._clock.monotonic())

    def sample(self) -> float:
        """One measurement of the value, as the sensor element would see it."""
        with self._lock:
            now = self._clock.monotonic()
            f = self.faults
            if f.stuck and self._stuck_value is not None:
                return self._stuck_value
            value = self._truth(now)
            if self.noise:
                value += self._rng.gauss(0.0, self.noise)
            if f.noise:
                value += self._rng.gauss(0.0, f.noise)
            if f.spike_probability and self._rng.random() < f.spike_probability:
                value += f.spike_size * self._rng.choice((-1.0, 1.0))
            if f.drift_per_s:
                value += f.drift_per_s * (now - self._fault_since)
            value = min(max(value, self.lo), self.hi)
            if f.stuck:
                self._stuck_value = value
            return value

    def _truth(self, now: float) -> float:
        if self._leader is not None:
            return min(max(self._leader.true_value(), self.lo), self.hi)
        dt = max(0.0, now - self._last_t)
        if self.walk and dt:
            # Mean-reverting random walk: wanders but never leaves the plausible band.
            step = self._rng.gauss(0.0, self.walk * math.sqrt(min(dt, 3600.0)))
            self._offset = self._offset * math.exp(-dt / (4 * self.period_s)) + step
        self._last_t = now
        cycle = self.amplitude * math.sin(2 * math.pi * (now - self._start) / self.period_s + self._phase)
        return min(max(self.base + cycle + self._offset, self.lo), self.hi)
