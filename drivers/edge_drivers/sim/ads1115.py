"""A register-level model of a TI ADS1115, after datasheet SBAS444 §8.

What it models, as the chip does it:

* A pointer register (the first byte of every write, bits 1:0) and four 16-bit
  registers sent MSB first: Conversion (read-only, 0 after reset until the first
  conversion), Config (reset 0x8583), Lo_thresh (0x8000), Hi_thresh (0x7FFF).
  A write of fewer than two data bytes changes only the pointer.
* Single shot: writing OS = 1 in power-down starts one conversion taking 1/DR on the
  clock (scaled by ``rate_error``); Config reads OS = 0 meanwhile, and the Conversion
  register changes only when the conversion ends, so an early read returns the
  previous result.  OS = 1 written during a conversion has no effect.
* Continuous mode (MODE = 0): a new result every 1/DR.  Switching back to single shot
  lets the conversion under way finish first (OS reads 0, a start is ignored).
* Codes: floor(V / LSB), LSB = FSR / 2^15, clipped to 0x7FFF / 0x8000, with a small
  negative offset so a grounded input reads a few negative codes.
* The I2C general-call reset: back to the power-on registers.

Inputs come from signals ``ain0_voltage_v`` … ``ain3_voltage_v``: AIN0 a 4–20 mA level
loop on 150 Ω (wandering 1.2–2.4 V), AIN1 a potentiometer near 1.65 V, AIN2 a battery
through a divider near 3.0 V, AIN3 grounded.  All stay within 0..3.3 V (VDD).

Fault knobs: ``stuck_busy`` (a started conversion never ends), ``rate_error`` (the
internal oscillator is this fraction slow, e.g. 0.1 = conversions 10 % long).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from edge_drivers.ads1115 import (
    CONFIG_RESET,
    DATA_RATES,
    DR,
    HI_THRESH_RESET,
    LO_THRESH_RESET,
    MODE,
    MODE_CONTINUOUS,
    MUX,
    MUX_INPUTS,
    OS,
    PGA,
    PGA_FSR,
    REG_CONFIG,
    REG_CONVERSION,
    REG_HI_THRESH,
    REG_LO_THRESH,
)
from edge_drivers.clock import SYSTEM_CLOCK, Clock
from edge_drivers.sim.i2c_bus import SimulatedI2CDevice
from edge_drivers.sim.recent import RecentList
from edge_drivers.sim.signals import Signal

OFFSET_V = -60e-6  # input-referred offset; datasheet: ±3 LSB at ±2.048 V, single-ended
NOISE_V = 5e-6


@dataclass
class _Conversion:
    ends_at: float
    mux: int
    pga: int


class SimulatedADS1115(SimulatedI2CDevice):
    """An ADS1115 on the simulated bus."""

    def __init__(
        self,
        address: int = 0x48,
        *,
        clock: Clock = SYSTEM_CLOCK,
        seed: int | None = None,
        stuck_busy: bool = False,
        rate_error: float = 0.0,
    ) -> None:
        super().__init__(address, clock=clock)
        self._rng = random.Random(seed)

        def signal(base: float, **kw: float) -> Signal:
            return Signal(base, lo=0.0, hi=3.3, seed=self._rng.randrange(2**32), clock=clock, **kw)

        self.signals: dict[str, Signal] = {
            "ain0_voltage_v": signal(1.8, amplitude=0.4, period_s=1800.0, walk=0.01, noise=0.0003),
            "ain1_voltage_v": signal(1.65, amplitude=0.02, period_s=600.0, walk=0.002, noise=0.0002),
            "ain2_voltage_v": signal(3.0, amplitude=0.03, period_s=3600.0, walk=0.002, noise=0.0002),
            "ain3_voltage_v": signal(0.0),
        }
        self.stuck_busy = stuck_busy
        """A started conversion never finishes (OS stays 0)."""
        self.rate_error = rate_error
        """Conversions take (1 + rate_error) / DR."""
        self.writes: RecentList[bytes] = RecentList()
        """Every write transaction received, byte for byte."""
        self._power_on()

    def _power_on(self) -> None:
        self.pointer = REG_CONVERSION
        self.registers = {
            REG_CONVERSION: 0x0000,
            REG_CONFIG: CONFIG_RESET & ~OS.mask,  # OS is status, not storage
            REG_LO_THRESH: LO_THRESH_RESET,
            REG_HI_THRESH: HI_THRESH_RESET,
        }
        self._conversion: _Conversion | None = None
        self._continuous_since: float | None = None
        self._continuous_done = 0

    # -- conversions -------------------------------------------------------------------

    def _period_s(self, config: int) -> float:
        return (1.0 + self.rate_error) / DATA_RATES[DR.decode(config)]

    def _code(self, mux: int, pga: int) -> int:
        positive, negative = MUX_INPUTS[mux]
        volts = self.signals[f"ain{positive}_voltage_v"].sample()
        if negative is not None:
            volts -= self.signals[f"ain{negative}_voltage_v"].sample()
        volts += OFFSET_V + self._rng.gauss(0.0, NOISE_V)
        code = math.floor(volts / (PGA_FSR[pga] / 32768))
        return min(max(code, -0x8000), 0x7FFF) & 0xFFFF

    def _update(self, now: float) -> None:
        conv = self._conversion
        if conv is not None and not self.stuck_busy and now >= conv.ends_at:
            self.registers[REG_CONVERSION] = self._code(conv.mux, conv.pga)
            self._conversion = None
        if self._continuous_since is not None:
            config = self.registers[REG_CONFIG]
            done = int((now - self._continuous_since) // self._period_s(config))
            if done > self._continuous_done:
                self._continuous_done = done
                self.registers[REG_CONVERSION] = self._code(MUX.decode(config), PGA.decode(config))

    def _write_config(self, word: int, now: float) -> None:
        previous = self.registers[REG_CONFIG]
        self.registers[REG_CONFIG] = word & ~OS.mask
        if MODE.decode(word) == MODE_CONTINUOUS:
            if self._continuous_since is None:
                self._continuous_since = now
                self._continuous_done = 0
            return
        if self._continuous_since is not None:
            # Leaving continuous mode: the conversion under way finishes, then power-down.
            period = self._period_s(previous)
            ends_at = self._continuous_since + (self._continuous_done + 1) * period
            self._conversion = _Conversion(ends_at, MUX.decode(previous), PGA.decode(previous))
            self._continuous_since = None
        if word & OS.mask and self._conversion is None:
            self._conversion = _Conversion(now + self._period_s(word), MUX.decode(word), PGA.decode(word))

    def _config_read(self) -> int:
        busy = self._conversion is not None or self._continuous_since is not None
        return self.registers[REG_CONFIG] | (0 if busy else OS.mask)

    # -- the wire ----------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        if not data:
            return
        now = self.clock.monotonic()
        self._update(now)
        self.pointer = data[0] & 0x03
        if len(data) < 3:
            return
        word = (data[1] << 8) | data[2]
        if self.pointer == REG_CONFIG:
            self._write_config(word, now)
        elif self.pointer != REG_CONVERSION:  # the Conversion register is read-only
            self.registers[self.pointer] = word

    def read(self, length: int) -> bytes:
        self._update(self.clock.monotonic())
        word = self._config_read() if self.pointer == REG_CONFIG else self.registers[self.pointer]
        pair = bytes([word >> 8, word & 0xFF])
        return (pair * (length // 2 + 1))[:length]

    def general_call_reset(self) -> None:
        self._power_on()
