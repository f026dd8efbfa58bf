"""Register-level model of a Bosch BME280 (or, with ``chip_id=0x58``, a BMP280) on the simulated I2C bus.

What it models (BME280 datasheet BST-BME280-DS002 rev 1.6):

* chip id 0xD0; soft reset (0xB6 to 0xE0) restoring register defaults, with ``im_update``
  (status bit 0) set while the NVM is copied; 0xE0 reads 0x00;
* I2C writes as register-address/data pairs in one transaction (no auto-increment), reads
  with auto-increment, and a burst read that sees one consistent set of data registers;
* ctrl_hum latched only by a write to ctrl_meas; config writes ignored in normal mode;
* forced mode (one conversion lasting t_meas,typ on the model's clock, ``measuring`` set
  meanwhile, then back to sleep) and normal mode (conversions every t_meas + t_standby);
* data registers at their reset values (0x80 0x00 0x00 / 0x80 0x00) until the first
  conversion finishes, and 0x80000 / 0x8000 for skipped channels;
* resolution: 16 bit + 1 bit per oversampling doubling with the filter off, 20 bit with the
  IIR filter on (DS §3.4.2, §3.4.3); the IIR filter on temperature and pressure, reset by a
  config write, its memory kept while a channel is skipped (DS §3.4.4);
* oversampling as the mean of ``osr`` samples of the signal, so it lowers the noise.

The ADC words are found by inverting the driver's own integer compensation (bisection over
the monotonic compensation), so the driver reads back the signals' values to within the
ADC resolution.  The calibration NVM is a real part's (published in pimoroni/bme280-python
``tests/calibration.py``), or any :class:`~edge_drivers.bme280.Calibration` passed in.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Final

from edge_drivers.bme280 import (
    CALIB_TP_LENGTH,
    CHIP_ID_BME280,
    FILTER,
    MODE,
    OSRS_H,
    OSRS_P,
    OSRS_T,
    RESET_COMMAND,
    SKIPPED_16BIT,
    SKIPPED_20BIT,
    T_SB,
    Calibration,
    Mode,
    Reg,
    measurement_time_s,
)
from edge_drivers.clock import SYSTEM_CLOCK, Clock
from edge_drivers.sim.i2c_bus import RegisterDevice
from edge_drivers.sim.signals import Signal

DEFAULT_CALIBRATION: Final = Calibration(
    t1=28009,
    t2=25654,
    t3=50,
    p1=39145,
    p2=-10750,
    p3=3024,
    p4=5667,
    p5=-120,
    p6=-7,
    p7=15500,
    p8=-14600,
    p9=6000,
    h1=75,
    h2=376,
    h3=0,
    h4=286,
    h5=50,
    h6=30,
)

NVM_COPY_S: Final = 0.001
"""How long im_update stays set after a soft reset (within the DS 2 ms start-up time)."""

# osrs_x / filter code → factor; codes above the table mean ×16 (DS Tables 20–23).
_OSR_BY_CODE: Final = (0, 1, 2, 4, 8, 16, 16, 16)
_FILTER_BY_CODE: Final = (0, 2, 4, 8, 16, 16, 16, 16)
# t_sb code → standby in ms: codes 110/111 differ between BME280 and BMP280.
_STANDBY_MS_BME280: Final = (0.5, 62.5, 125.0, 250.0, 500.0, 1000.0, 10.0, 20.0)
_STANDBY_MS_BMP280: Final = (0.5, 62.5, 125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0)
_MAX_CATCH_UP: Final = 32  # normal-mode conversions replayed at most (the filter has settled by then)

_DATA_RESET: Final = bytes([0x80, 0x00, 0x00, 0x80, 0x00, 0x00, 0x80, 0x00])


def calibration_registers(cal: Calibration, *, humidity: bool = True) -> tuple[bytes, bytes]:
    """Encode ``cal`` as the NVM bytes at 0x88 (26) and 0xE1 (7): the inverse of
    :meth:`Calibration.from_registers`."""

    def le16(value: int) -> bytes:
        return (value & 0xFFFF).to_bytes(2, "little")

    tp = b"".join(le16(v) for v in (cal.t1, cal.t2, cal.t3, cal.p1, cal.p2, cal.p3, cal.p4))
    tp += b"".join(le16(v) for v in (cal.p5, cal.p6, cal.p7, cal.p8, cal.p9))
    tp += bytes([0x00, cal.h1 if humidity else 0x00])
    h = le16(cal.h2) + bytes(
        [
            cal.h3,
            (cal.h4 >> 4) & 0xFF,
            ((cal.h5 & 0x0F) << 4) | (cal.h4 & 0x0F),
            (cal.h5 >> 4) & 0xFF,
            cal.h6 & 0xFF,
        ]
    )
    return tp, h if humidity else bytes(len(h))


def _closest(f: Callable[[int], int], target: float, lo: int, hi: int) -> int:
    """The x in [lo, hi] whose f(x) is closest to ``target``, for a non-decreasing f."""
    a, b = lo, hi
    while a < b:  # smallest x with f(x) >= target
        mid = (a + b) // 2
        if f(mid) < target:
            a = mid + 1
        else:
            b = mid
    if a > lo and abs(f(a - 1) - target) <= abs(f(a) - target):
        return a - 1
    return a


class SimulatedBME280(RegisterDevice):
    """A BME280 (``chip_id=0x60``) or BMP280 (``chip_id=0x58``) at register level.

    Fault knobs: ``stuck_measuring`` (a conversion never finishes: status bit 3 stays 1),
    ``stuck_nvm_copy`` (im_update stays 1 after a reset) and :meth:`brown_out` (a power-on
    reset behind the driver's back, now or during the next conversion).  Any ``chip_id`` can be set to play
    another chip.  Bus NACK/EIO come from :meth:`SimulatedSMBus.inject`.
    """

    def __init__(
        self,
        address: int = 0x76,
        *,
        clock: Clock = SYSTEM_CLOCK,
        seed: int | None = None,
        chip_id: int = CHIP_ID_BME280,
        calibration: Calibration | None = None,
    ) -> None:
        super().__init__(address, clock=clock)
        self.chip_id = chip_id
        self.has_humidity = chip_id == CHIP_ID_BME280
        self.calibration = calibration or DEFAULT_CALIBRATION
        self.stuck_measuring = False
        self.stuck_nvm_copy = False
        self._brown_out_pending = False
        rng = random.Random(seed)
        self.signals: dict[str, Signal] = {
            "temperature_c": Signal(
                21.0,
                amplitude=1.5,
                period_s=600.0,
                walk=0.02,
                noise=0.01,
                lo=-40.0,
                hi=85.0,
                seed=rng.getrandbits(32),
                clock=clock,
            ),
            "pressure_pa": Signal(
                101325.0,
                amplitude=120.0,
                period_s=3 * 3600.0,
                walk=1.5,
                noise=1.5,
                lo=30000.0,
                hi=110000.0,
                seed=rng.getrandbits(32),
                clock=clock,
            ),
        }
        if self.has_humidity:
            self.signals["relative_humidity_pct"] = Signal(
                45.0,
                amplitude=4.0,
                period_s=900.0,
                walk=0.05,
                noise=0.1,
                lo=0.0,
                hi=100.0,
                seed=rng.getrandbits(32),
                clock=clock,
            )
        tp, h = calibration_registers(self.calibration, humidity=self.has_humidity)
        self.registers[Reg.CALIB_TP : Reg.CALIB_TP + CALIB_TP_LENGTH] = tp
        self.registers[Reg.CALIB_H : Reg.CALIB_H + len(h)] = h
        self.registers[Reg.CHIP_ID] = chip_id
        self._reset_state()
        self._nvm_ready_at = clock.monotonic()  # powered up long ago: NVM already copied

    # -- the wire ---------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Register-address/data pairs (DS §6.2.1); a lone address byte sets the read pointer."""
        self._advance()
        addresses, values = data[0::2], data[1::2]
        for register, value in zip(addresses, values, strict=False):
            self.write_register(register, value)
        if addresses:
            self.pointer = addresses[-1]

    def read(self, length: int) -> bytes:
        self._advance()  # once per transaction: a burst read sees one consistent data set
        return super().read(length)

    def read_register(self, register: int) -> int:
        if register == Reg.STATUS:
            return (int(self._measuring()) << 3) | int(self._nvm_copying())
        if register == Reg.CTRL_MEAS:
            return MODE.put(self.registers[register], self._mode)
        return self.registers[register]

    def write_register(self, register: int, value: int) -> None:
        if register == Reg.RESET and value == RESET_COMMAND:
            self._reset_state()
        elif register == Reg.CTRL_HUM and self.has_humidity:
            self.registers[register] = value & OSRS_H.mask
        elif register == Reg.CTRL_MEAS:
            self.registers[register] = value
            self._osrs_h_active = OSRS_H.get(self.registers[Reg.CTRL_HUM])
            bits = MODE.get(value)
            self._set_mode(Mode.SLEEP if bits == 0 else Mode.NORMAL if bits == Mode.NORMAL else Mode.FORCED)
        elif register == Reg.CONFIG and self._mode != Mode.NORMAL:
            # DS §5.4.6: config writes in normal mode may be ignored.  Writing the filter
            # resets its memory (DS §3.4.4).
            self.registers[register] = value
            self._iir.clear()
        # Everything else (id, calibration, status, data) is read-only.

    def brown_out(self, *, during_next_conversion: bool = False) -> None:
        """A supply dip or ESD resets the chip: every control register back to 0x00 (humidity
        skipped, filter off), the data registers to their reset values.  With
        ``during_next_conversion`` the reset strikes while the next forced conversion runs, so
        that conversion never lands."""
        if during_next_conversion:
            self._brown_out_pending = True
        else:
            self._reset_state()

    # -- state ----------------------------------------------------------------------------

    def _reset_state(self) -> None:
        for register in (Reg.CTRL_HUM, Reg.CTRL_MEAS, Reg.CONFIG):
            self.registers[register] = 0x00
        data = _DATA_RESET if self.has_humidity else _DATA_RESET[:6] + bytes(2)
        self.registers[Reg.DATA : Reg.DATA + len(data)] = data
        self._osrs_h_active = 0
        self._mode = Mode.SLEEP
        self._conversion_end: float | None = None
        self._cycle_start = 0.0
        self._cycles_done = 0
        self._iir: dict[str, float] = {}
        self._nvm_ready_at = self.clock.monotonic() + NVM_COPY_S

    def _set_mode(self, mode: Mode) -> None:
        now = self.clock.monotonic()
        self._mode = mode
        self._conversion_end = now + self._t_meas() if mode == Mode.FORCED else None
        self._cycle_start, self._cycles_done = now, 0

    def _nvm_copying(self) -> bool:
        return self.stuck_nvm_copy or self.clock.monotonic() < self._nvm_ready_at

    def _oversampling(self) -> tuple[int, int, int]:
        ctrl_meas = self.registers[Reg.CTRL_MEAS]
        return (
            _OSR_BY_CODE[OSRS_T.get(ctrl_meas)],
            _OSR_BY_CODE[OSRS_P.get(ctrl_meas)],
            _OSR_BY_CODE[self._osrs_h_active] if self.has_humidity else 0,
        )

    def _t_meas(self) -> float:
        return measurement_time_s(*self._oversampling(), maximum=False)

    def _period(self) -> float:
        table = _STANDBY_MS_BME280 if self.has_humidity else _STANDBY_MS_BMP280
        return self._t_meas() + table[T_SB.get(self.registers[Reg.CONFIG])] / 1000.0

    def _measuring(self) -> bool:
        if self._mode == Mode.FORCED:
            return self._conversion_end is not None
        if self._mode == Mode.NORMAL:
            elapsed = self.clock.monotonic() - self._cycle_start
            return self.stuck_measuring or elapsed % self._period() < self._t_meas()
        return False

    def _advance(self) -> None:
        """Finish the conversions that are due by now."""
        if self.stuck_measuring:
            return
        now = self.clock.monotonic()
        if self._mode == Mode.FORCED and self._conversion_end is not None and now >= self._conversion_end:
            if self._brown_out_pending:
                self._brown_out_pending = False
                self._reset_state()
                return
            self._convert()
            self._mode, self._conversion_end = Mode.SLEEP, None
        elif self._mode == Mode.NORMAL:
            elapsed = now - self._cycle_start - self._t_meas()
            due = math.floor(elapsed / self._period()) + 1 if elapsed >= 0 else 0
            for _ in range(min(due - self._cycles_done, _MAX_CATCH_UP)):
                self._convert()
            self._cycles_done = max(due, self._cycles_done)

    # -- one conversion -------------------------------------------------------------------

    def _convert(self) -> None:
        cal = self.calibration
        osr_t, osr_p, osr_h = self._oversampling()
        coefficient = _FILTER_BY_CODE[FILTER.get(self.registers[Reg.CONFIG])]
        temperature = self._sample("temperature_c", max(osr_t, 1))
        adc_t_exact = _closest(cal.t_fine, temperature * 5120.0, 0, 0xFFFFF)
        adc_t = self._filtered("t", adc_t_exact, osr_t, coefficient) if osr_t else SKIPPED_20BIT
        # Pressure and humidity are inverted at the t_fine the driver will compute.
        t_fine = cal.t_fine(adc_t if osr_t else adc_t_exact)
        adc_p = SKIPPED_20BIT
        if osr_p:
            target = -self._sample("pressure_pa", osr_p) * 256.0
            exact = _closest(lambda x: -(cal.pressure_q24_8(x, t_fine) or 0), target, 0, 0xFFFFF)
            adc_p = self._filtered("p", exact, osr_p, coefficient)
        self.registers[Reg.DATA : Reg.DATA + 6] = _word20(adc_p) + _word20(adc_t)
        if self.has_humidity:
            adc_h = SKIPPED_16BIT
            if osr_h:
                target = self._sample("relative_humidity_pct", osr_h) * 1024.0
                adc_h = _closest(lambda x: cal.humidity_q22_10(x, t_fine), target, 0, 0xFFFF)
            self.registers[Reg.DATA + 6 : Reg.DATA + 8] = adc_h.to_bytes(2, "big")

    def _sample(self, quantity: str, osr: int) -> float:
        signal = self.signals[quantity]
        return sum(signal.sample() for _ in range(osr)) / osr

    def _filtered(self, channel: str, adc: int, osr: int, coefficient: int) -> int:
        """Apply the IIR filter (DS §3.4.4) and the output resolution (DS §3.4.2, §3.4.3)."""
        if coefficient:
            previous = self._iir.get(channel, float(adc))  # the first sample seeds the filter
            self._iir[channel] = (previous * (coefficient - 1) + adc) / coefficient
            return min(round(self._iir[channel]), 0xFFFFF)
        step = 16 >> int(math.log2(osr))  # 16 bit at ×1 … 20 bit at ×16
        return min(round(adc / step) * step, 0x100000 - step)


def _word20(adc: int) -> bytes:
    return bytes([(adc >> 12) & 0xFF, (adc >> 4) & 0xFF, (adc & 0x0F) << 4])
