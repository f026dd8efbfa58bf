"""A command-level model of a Sensirion SHT3x-DIS, after datasheet v5 (May 2018).

What it models, as the chip does it:

* 16-bit commands decoded one per write transaction; an unknown command sets status
  bit 1 ("last command not processed"), a known one clears it.
* Single shot without clock stretching: the read header is NACKed (errno 121) until
  the measurement time for the repeatability has passed on the clock; the data can
  be read once, then the next read is NACKed again.  With clock stretching (0x2Cxx)
  the read holds the bus until the measurement is done.
* Periodic mode (Table 10, ART): acquisitions at the chosen rate, fetched with 0xE000
  (NACK when there is no new acquisition; the data memory is cleared by the fetch),
  stopped by the break command.  A soft reset is ignored in periodic mode.
* Soft reset, general-call reset: busy (NACK) for t_SR, then the power-up state with
  status bits 15 (alert pending) and 4 (reset detected) set; 0x3041 clears them.
* The heater (status bit 13) warms the sensing element by a few °C with a time
  constant of a couple of seconds; the relative humidity it sees drops accordingly.
* CRC-8 on every word read.  Alert limits are not modelled: their write commands
  only have their data CRC checked (status bit 0).

Fault knobs: ``corrupt_crc`` (the next N words read get a wrong CRC), ``dead_heater``
(the heater bit sets but nothing warms), ``stuck_busy`` (measurements never finish).
"""

from __future__ import annotations

import errno
import math
import os
import random
from dataclasses import dataclass

from edge_drivers.clock import SYSTEM_CLOCK, Clock
from edge_drivers.sht3x import (
    CMD_BREAK,
    CMD_CLEAR_STATUS,
    CMD_HEATER_OFF,
    CMD_HEATER_ON,
    CMD_MEASURE_SINGLE_SHOT,
    CMD_READ_STATUS,
    CMD_SOFT_RESET,
    STATUS_BITS,
    Repeatability,
    crc8,
)
from edge_drivers.sim.i2c_bus import SimulatedI2CDevice
from edge_drivers.sim.recent import RecentList
from edge_drivers.sim.signals import Signal

CMD_FETCH_DATA = 0xE000
_SINGLE_SHOT: dict[int, Repeatability] = {command: rep for rep, command in CMD_MEASURE_SINGLE_SHOT.items()}
CMD_MEASURE_SINGLE_SHOT_STRETCH: dict[int, Repeatability] = {0x2C06: "high", 0x2C0D: "medium", 0x2C10: "low"}
# Periodic acquisition commands (Table 10; ART, Table 12, runs at 4 Hz): (mps, repeatability).
CMD_PERIODIC: dict[int, tuple[float, Repeatability]] = {
    0x2032: (0.5, "high"),
    0x2024: (0.5, "medium"),
    0x202F: (0.5, "low"),
    0x2130: (1, "high"),
    0x2126: (1, "medium"),
    0x212D: (1, "low"),
    0x2236: (2, "high"),
    0x2220: (2, "medium"),
    0x222B: (2, "low"),
    0x2334: (4, "high"),
    0x2322: (4, "medium"),
    0x2329: (4, "low"),
    0x2737: (10, "high"),
    0x2721: (10, "medium"),
    0x272A: (10, "low"),
    0x2B32: (4, "high"),
}
# Commands that carry one data word + CRC (alert limit writes, embedded-sht).
CMD_WRITE_ALERT_LIMITS = frozenset({0x611D, 0x6116, 0x610B, 0x6100})

# Typical measurement durations (Table 4): the chip is usually faster than the maximum.
TYPICAL_MEASUREMENT_S: dict[Repeatability, float] = {"high": 0.0125, "medium": 0.0045, "low": 0.0025}
SOFT_RESET_S = 0.0015  # t_SR max (Table 4)
BREAK_S = 0.001  # §4.8
MIN_COMMAND_SPACING_S = 0.001

ALERT_PENDING = 1 << STATUS_BITS["alert_pending"]
HEATER_ON = 1 << STATUS_BITS["heater_on"]
RESET_DETECTED = 1 << STATUS_BITS["reset_detected"]
COMMAND_FAILED = 1 << STATUS_BITS["command_failed"]
WRITE_CHECKSUM_FAILED = 1 << STATUS_BITS["write_checksum_failed"]
CLEARABLE = (
    ALERT_PENDING
    | RESET_DETECTED
    | (1 << STATUS_BITS["rh_tracking_alert"])
    | (1 << STATUS_BITS["t_tracking_alert"])
)

HEATER_RISE_C = 3.0  # "a few degrees centigrade" (§4.10)
HEATER_TIME_CONSTANT_S = 2.0
_EPS = 1e-9  # float slack when comparing the clock with a deadline


def ticks_from_temperature(t_c: float) -> int:
    """Invert T = -45 + 175 * S / 65535, rounded and clipped to 16 bits."""
    return min(max(round((t_c + 45.0) * 65535 / 175), 0), 0xFFFF)


def ticks_from_humidity(rh_pct: float) -> int:
    """Invert RH = 100 * S / 65535, rounded and clipped to 16 bits."""
    return min(max(round(rh_pct * 65535 / 100), 0), 0xFFFF)


def _saturation_vapour_pressure_hpa(t_c: float) -> float:
    """Magnus formula over water (Sensirion's humidity app note constants)."""
    return 6.112 * math.exp(17.62 * t_c / (243.12 + t_c))


def _nack() -> OSError:
    return OSError(errno.EREMOTEIO, os.strerror(errno.EREMOTEIO))


@dataclass
class _Periodic:
    started: float
    period_s: float
    repeatability: Repeatability
    fetched: int = 0
    """Index of the last acquisition fetched (acquisitions are numbered from 1)."""

    def latest(self, now: float) -> int:
        first_done = self.started + TYPICAL_MEASUREMENT_S[self.repeatability]
        if now + _EPS < first_done:
            return 0
        return int((now - first_done + _EPS) // self.period_s) + 1


class SimulatedSHT3x(SimulatedI2CDevice):
    """An SHT3x on the simulated bus, fed by ``temperature_c`` and ``relative_humidity_pct`` signals."""

    def __init__(
        self,
        address: int = 0x44,
        *,
        clock: Clock = SYSTEM_CLOCK,
        seed: int | None = None,
        corrupt_crc: int = 0,
        dead_heater: bool = False,
        stuck_busy: bool = False,
    ) -> None:
        super().__init__(address, clock=clock)
        rng = random.Random(seed)
        self.signals: dict[str, Signal] = {
            "temperature_c": Signal(
                21.0, amplitude=1.5, period_s=600.0, walk=0.02, noise=0.01, lo=-40.0, hi=125.0,
                seed=rng.randrange(2**32), clock=clock,
            ),
            "relative_humidity_pct": Signal(
                45.0, amplitude=5.0, period_s=900.0, walk=0.1, noise=0.03, lo=0.0, hi=100.0,
                seed=rng.randrange(2**32), clock=clock,
            ),
        }  # fmt: skip
        self.corrupt_crc = corrupt_crc
        """The next this-many words read get a wrong CRC."""
        self.dead_heater = dead_heater
        """The heater command sets the status bit, but nothing warms up."""
        self.stuck_busy = stuck_busy
        """Measurements never finish: the read header stays NACKed."""
        self.commands: RecentList[int] = RecentList()
        """Every command received, in order (what was on the wire)."""
        self.spacing_violations = 0
        """Commands sent less than 1 ms after the previous one (DS §4)."""
        self._power_up()

    # -- state -------------------------------------------------------------------------

    def _power_up(self) -> None:
        now = self.clock.monotonic()
        self._status = ALERT_PENDING | RESET_DETECTED
        self._heater = False
        self._heat_c = 0.0  # current excess temperature of the sensing element
        self._heat_at = now
        self._busy_until = now
        self._last_command_at: float | None = None
        self._output: bytes | None = None
        self._measurement_done_at: float | None = None
        self._stretch = False
        self._periodic: _Periodic | None = None

    def _heater_excess(self, now: float) -> float:
        target = HEATER_RISE_C if self._heater and not self.dead_heater else 0.0
        decay = math.exp(-max(0.0, now - self._heat_at) / HEATER_TIME_CONSTANT_S)
        return target + (self._heat_c - target) * decay

    def _set_heater(self, on: bool) -> None:
        now = self.clock.monotonic()
        self._heat_c = self._heater_excess(now)
        self._heat_at = now
        self._heater = on

    def status_word(self) -> int:
        return self._status | (HEATER_ON if self._heater else 0)

    def _words(self, *words: int) -> bytes:
        out = bytearray()
        for word in words:
            pair = bytes([word >> 8, word & 0xFF])
            crc = crc8(pair)
            if self.corrupt_crc > 0:
                self.corrupt_crc -= 1
                # Noise flips different bits each time (a wrong chip answers the same way).
                crc ^= (0x5A, 0xA5, 0x3C)[self.corrupt_crc % 3]
            out += pair + bytes([crc])
        return bytes(out)

    def _measurement(self) -> bytes:
        """Sample the signals now, as the sensing element sees them (heater included)."""
        now = self.clock.monotonic()
        t_air = self.signals["temperature_c"].sample()
        rh_air = self.signals["relative_humidity_pct"].sample()
        t_chip = t_air + self._heater_excess(now)
        # Same water content, warmer element: the relative humidity it sees drops.
        rh_chip = rh_air * _saturation_vapour_pressure_hpa(t_air) / _saturation_vapour_pressure_hpa(t_chip)
        return self._words(ticks_from_temperature(t_chip), ticks_from_humidity(rh_chip))

    def _settle(self, now: float) -> None:
        done = self._measurement_done_at
        if done is not None and not self.stuck_busy and now + _EPS >= done:
            self._measurement_done_at = None
            self._output = self._measurement()

    # -- the wire ----------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        now = self.clock.monotonic()
        if now + _EPS < self._busy_until:
            raise _nack()  # resetting or breaking: "the sensor will not process commands"
        if len(data) < 2:
            self._status |= COMMAND_FAILED
            return
        if self._last_command_at is not None and now - self._last_command_at + _EPS < MIN_COMMAND_SPACING_S:
            self.spacing_violations += 1
        self._last_command_at = now
        command = (data[0] << 8) | data[1]
        self.commands.append(command)
        self._settle(now)
        if self._execute(command, data[2:], now):
            if command != CMD_READ_STATUS:
                self._status &= ~COMMAND_FAILED
        else:
            self._status |= COMMAND_FAILED

    def _execute(self, command: int, payload: bytes, now: float) -> bool:
        """Carry out ``command``; False if the chip would not process it."""
        if command in CMD_WRITE_ALERT_LIMITS:
            if len(payload) != 3:
                return False
            if crc8(payload[:2]) != payload[2]:
                self._status |= WRITE_CHECKSUM_FAILED
            else:
                self._status &= ~WRITE_CHECKSUM_FAILED
            return True
        if payload:
            return False
        if command == CMD_READ_STATUS:
            self._output = self._words(self.status_word())
        elif command == CMD_CLEAR_STATUS:
            self._status &= ~CLEARABLE
        elif command == CMD_HEATER_ON:
            self._set_heater(True)
        elif command == CMD_HEATER_OFF:
            self._set_heater(False)
        elif command == CMD_BREAK:
            self._periodic = None
            self._measurement_done_at = None
            self._busy_until = now + BREAK_S
        elif command == CMD_FETCH_DATA:
            if self._periodic is None:
                return False
            latest = self._periodic.latest(now)
            self._output = None
            if latest > self._periodic.fetched:
                self._periodic.fetched = latest
                self._output = self._measurement()
        elif self._periodic is not None:
            # Periodic mode takes only fetch, break, heater and status commands; in
            # particular a soft reset is ignored (§4.9: only "in idle state").
            return False
        elif command == CMD_SOFT_RESET:
            self._power_up()
            self._busy_until = now + SOFT_RESET_S
            self._last_command_at = now
        elif command in CMD_PERIODIC:
            mps, repeatability = CMD_PERIODIC[command]
            self._periodic = _Periodic(started=now, period_s=1.0 / mps, repeatability=repeatability)
            self._output = None
        else:
            single = _SINGLE_SHOT.get(command) or CMD_MEASURE_SINGLE_SHOT_STRETCH.get(command)
            if single is None:
                return False
            self._output = None
            self._measurement_done_at = now + TYPICAL_MEASUREMENT_S[single]
            self._stretch = command in CMD_MEASURE_SINGLE_SHOT_STRETCH
        return True

    def read(self, length: int) -> bytes:
        now = self.clock.monotonic()
        if now + _EPS < self._busy_until:
            raise _nack()
        done = self._measurement_done_at
        if self._stretch and done is not None and not self.stuck_busy and now < done:
            self.clock.sleep(done - now)  # clock stretching: the bus is held until the data is ready
            now = self.clock.monotonic()
        self._settle(now)
        if self._output is None:
            raise _nack()  # no data: the read header is not acknowledged (§4.4, §4.6)
        out, self._output = self._output, None
        return out[:length] + b"\xff" * (length - len(out))  # past the data the bus idles high

    def general_call_reset(self) -> None:
        """Functionally identical to the nRESET pin (§4.9): back to the power-up state."""
        self._power_up()
        self._busy_until = self.clock.monotonic() + SOFT_RESET_S
