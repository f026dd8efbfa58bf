"""Bosch BME280 humidity, pressure and temperature sensor (and its sibling BMP280) on I2C.

Written from the Bosch BME280 datasheet BST-BME280-DS002 rev 1.6: register map (§5.3),
forced-mode sequence (§3.3), compensation in the integer set of §4.2.3 (int32 temperature
in 0.01 °C, int64 pressure in Q24.8 Pa, int32 humidity in Q22.10 %RH) and the measurement
time of Appendix B (§9.1).  A BMP280 (BST-BMP280-DS001 rev 1.23) is recognised by its chip
id and runs with the same temperature/pressure registers and formulas, without humidity.

The register map is data (:class:`Reg`, :class:`BitField`, the oversampling and filter code
tables) and the compensation is pure arithmetic on a :class:`Calibration`, so both can be
tested without a bus.  The driver always uses forced mode: one conversion per :meth:`read`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final, Protocol

from edge_drivers.api import DriverOptions, DriverSpec, Quantity, SelfTestResult
from edge_drivers.clock import SYSTEM_CLOCK, Clock
from edge_drivers.errors import (
    BusError,
    ChipNotFoundError,
    ChipResetError,
    DriverError,
    MalformedDataError,
    NotReadyError,
    OptionError,
    SensorTimeoutError,
    WrongChipError,
)

NAME = "bme280"

# -- register map (DS §5.3, Table 18) ------------------------------------------------------


class Reg(IntEnum):
    CALIB_TP = 0x88  # dig_T1 … dig_P9, 0xA0 unused, dig_H1 at 0xA1
    CHIP_ID = 0xD0
    RESET = 0xE0
    CALIB_H = 0xE1  # dig_H2 … dig_H6 (BME280 only)
    CTRL_HUM = 0xF2
    STATUS = 0xF3
    CTRL_MEAS = 0xF4
    CONFIG = 0xF5
    DATA = 0xF7  # press msb/lsb/xlsb, temp msb/lsb/xlsb, hum msb/lsb


CALIB_TP_LENGTH: Final = 26
CALIB_H_LENGTH: Final = 7
DATA_LENGTH_BME280: Final = 8
DATA_LENGTH_BMP280: Final = 6  # the BMP280 has no 0xFD/0xFE
RESET_COMMAND: Final = 0xB6
SKIPPED_20BIT: Final = 0x80000
"""What a skipped temperature or pressure channel reads (DS §4.2.1), and its reset value."""
SKIPPED_16BIT: Final = 0x8000
"""What a skipped humidity channel reads, and its reset value."""


@dataclass(frozen=True)
class BitField:
    """A bit field inside an 8-bit register."""

    register: Reg
    shift: int
    width: int

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.shift

    def get(self, register_value: int) -> int:
        return (register_value & self.mask) >> self.shift

    def put(self, register_value: int, code: int) -> int:
        return (register_value & ~self.mask & 0xFF) | ((code << self.shift) & self.mask)


OSRS_H: Final = BitField(Reg.CTRL_HUM, 0, 3)
OSRS_T: Final = BitField(Reg.CTRL_MEAS, 5, 3)
OSRS_P: Final = BitField(Reg.CTRL_MEAS, 2, 3)
MODE: Final = BitField(Reg.CTRL_MEAS, 0, 2)
T_SB: Final = BitField(Reg.CONFIG, 5, 3)
FILTER: Final = BitField(Reg.CONFIG, 2, 3)
STATUS_MEASURING: Final = BitField(Reg.STATUS, 3, 1)
STATUS_IM_UPDATE: Final = BitField(Reg.STATUS, 0, 1)


class Mode(IntEnum):
    SLEEP = 0b00
    FORCED = 0b01  # 0b10 is forced too
    NORMAL = 0b11


OVERSAMPLING_CODES: Final[dict[int, int]] = {0: 0b000, 1: 0b001, 2: 0b010, 4: 0b011, 8: 0b100, 16: 0b101}
"""Oversampling factor → osrs_x code; 0 skips the channel (its output reads 0x80000 / 0x8000)."""
FILTER_CODES: Final[dict[int, int]] = {0: 0b000, 2: 0b001, 4: 0b010, 8: 0b011, 16: 0b100}
"""IIR filter coefficient → filter code; 0 switches the filter off."""

CHIP_ID_BME280: Final = 0x60
CHIP_IDS_BMP280: Final = (0x56, 0x57, 0x58)  # 0x56/0x57 are engineering samples
_OTHER_CHIPS: Final[dict[int, str]] = {0x55: "a BMP180/BMP085", 0x61: "a BME680"}

DEFAULT_ADDRESS: Final = 0x76
ADDRESSES: Final = (0x76, 0x77)

# Operating range (DS Table 1), used by the self-test.
TEMPERATURE_RANGE_C: Final = (-40.0, 85.0)
PRESSURE_RANGE_PA: Final = (30000.0, 110000.0)

_STARTUP_S: Final = 0.002  # DS Table 1: start-up time 2 ms
_NVM_COPY_TIMEOUT_S: Final = 0.010  # Bosch SensorAPI polls im_update 5 × 2 ms
_MEASUREMENT_GRACE_S: Final = 0.020  # how long `measuring` may outlast t_meas,max
_POLL_S: Final = 0.001


def measurement_time_s(osr_t: int, osr_p: int, osr_h: int, *, maximum: bool = True) -> float:
    """t_meas for one forced conversion (DS Appendix B, §9.1); a skipped channel adds nothing.

    max = 1.25 + 2.3·osr_t + (2.3·osr_p + 0.575) + (2.3·osr_h + 0.575)  [ms]
    typ = 1    + 2·osr_t   + (2·osr_p + 0.5)     + (2·osr_h + 0.5)      [ms]
    """
    per_sample, offset, base = (2.3, 0.575, 1.25) if maximum else (2.0, 0.5, 1.0)
    ms = base + per_sample * osr_t
    for osr in (osr_p, osr_h):
        if osr:
            ms += per_sample * osr + offset
    return ms / 1000.0


# -- calibration and compensation (DS §4.2.2, §4.2.3) -----------------------------------


def _s8(value: int) -> int:
    return value - 0x100 if value & 0x80 else value


def _u16(lsb: int, msb: int) -> int:
    return (msb << 8) | lsb


def _s16(lsb: int, msb: int) -> int:
    value = _u16(lsb, msb)
    return value - 0x10000 if value & 0x8000 else value


def _c_div(a: int, b: int) -> int:
    """C integer division (truncates toward zero), where the DS code divides with ``/``."""
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


@dataclass(frozen=True)
class Calibration:
    """The trimming parameters dig_T1 … dig_H6 and the DS integer compensation on them.

    Python's ``>>`` is arithmetic, as the DS code assumes for its signed types; Python
    integers do not overflow, and for real trimming values the DS int32/int64 intermediates
    stay in range, so the results are bit-exact with the DS C code.
    """

    t1: int
    t2: int
    t3: int
    p1: int
    p2: int
    p3: int
    p4: int
    p5: int
    p6: int
    p7: int
    p8: int
    p9: int
    h1: int = 0
    h2: int = 0
    h3: int = 0
    h4: int = 0
    h5: int = 0
    h6: int = 0

    @classmethod
    def from_registers(cls, tp: Sequence[int], h: Sequence[int] | None = None) -> Calibration:
        """Parse the 26 bytes from 0x88 and (BME280 only) the 7 bytes from 0xE1 (DS Table 16)."""
        if len(tp) != CALIB_TP_LENGTH:
            raise ValueError(f"expected {CALIB_TP_LENGTH} calibration bytes from 0x88, got {len(tp)}")
        p = [_s16(tp[i], tp[i + 1]) for i in range(8, 24, 2)]  # dig_P2 … dig_P9
        humidity: dict[str, int] = {}
        if h is not None:
            if len(h) != CALIB_H_LENGTH:
                raise ValueError(f"expected {CALIB_H_LENGTH} calibration bytes from 0xE1, got {len(h)}")
            humidity = {
                "h1": tp[25],  # 0xA1
                "h2": _s16(h[0], h[1]),
                "h3": h[2],
                # 12-bit signed, sharing 0xE5: H4 = E4[7:0]·E5[3:0], H5 = E6[7:0]·E5[7:4].  The
                # signed high byte carries the sign (Bosch parse_humidity_calib_data).
                "h4": (_s8(h[3]) << 4) | (h[4] & 0x0F),
                "h5": (_s8(h[5]) << 4) | (h[4] >> 4),
                "h6": _s8(h[6]),
            }
        return cls(
            t1=_u16(tp[0], tp[1]),
            t2=_s16(tp[2], tp[3]),
            t3=_s16(tp[4], tp[5]),
            p1=_u16(tp[6], tp[7]),
            p2=p[0],
            p3=p[1],
            p4=p[2],
            p5=p[3],
            p6=p[4],
            p7=p[5],
            p8=p[6],
            p9=p[7],
            **humidity,
        )

    def t_fine(self, adc_t: int) -> int:
        """The fine temperature that pressure and humidity compensation need (t_fine/5120 = °C)."""
        var1 = (((adc_t >> 3) - (self.t1 << 1)) * self.t2) >> 11
        d = (adc_t >> 4) - self.t1
        var2 = (((d * d) >> 12) * self.t3) >> 14
        return var1 + var2

    @staticmethod
    def temperature_centi_c(t_fine: int) -> int:
        """Temperature in 0.01 °C (bme280_compensate_T_int32)."""
        return (t_fine * 5 + 128) >> 8

    def pressure_q24_8(self, adc_p: int, t_fine: int) -> int | None:
        """Pressure in Pa·256 (bme280_compensate_P_int64); None where the DS returns 0 to
        avoid a division by zero (an invalid dig_P1)."""
        var1 = t_fine - 128000
        var2 = var1 * var1 * self.p6
        var2 = var2 + ((var1 * self.p5) << 17)
        var2 = var2 + (self.p4 << 35)
        var1 = ((var1 * var1 * self.p3) >> 8) + ((var1 * self.p2) << 12)
        var1 = (((1 << 47) + var1) * self.p1) >> 33
        if var1 == 0:
            return None
        p = 1048576 - adc_p
        p = _c_div(((p << 31) - var2) * 3125, var1)
        var1 = (self.p9 * (p >> 13) * (p >> 13)) >> 25
        var2 = (self.p8 * p) >> 19
        return ((p + var1 + var2) >> 8) + (self.p7 << 4)

    def humidity_q22_10(self, adc_h: int, t_fine: int) -> int:
        """Relative humidity in %RH·1024, 0 … 102400 (bme280_compensate_H_int32)."""
        x = t_fine - 76800
        offset = (((adc_h << 14) - (self.h4 << 20) - (self.h5 * x)) + 16384) >> 15
        scale = (((((x * self.h6) >> 10) * (((x * self.h3) >> 11) + 32768)) >> 10) + 2097152) * self.h2
        v = offset * ((scale + 8192) >> 14)
        v = v - (((((v >> 15) * (v >> 15)) >> 7) * self.h1) >> 4)
        v = min(max(v, 0), 419430400)
        return v >> 12


def calibration_problem(tp: Sequence[int], h: Sequence[int] | None) -> str | None:
    """Why these calibration bytes cannot come from a working chip, or None if they can."""
    for name, block in (("0x88", tp), ("0xE1", h)):
        if block is not None and (all(b == 0x00 for b in block) or all(b == 0xFF for b in block)):
            return f"calibration block at {name} reads all 0x{block[0]:02X} (NVM not readable?)"
    if _u16(tp[0], tp[1]) == 0 or _u16(tp[6], tp[7]) == 0:
        return "calibration dig_T1 or dig_P1 is 0 (no real part has that)"
    return None


@dataclass(frozen=True)
class RawSample:
    """The ADC words of one burst read from 0xF7 (DS §4.2.1)."""

    adc_p: int
    adc_t: int
    adc_h: int | None


def parse_data(block: Sequence[int]) -> RawSample:
    """Split the 8-byte (BME280) or 6-byte (BMP280) burst read from 0xF7 into 20/20/16-bit words."""
    adc_p = (block[0] << 12) | (block[1] << 4) | (block[2] >> 4)
    adc_t = (block[3] << 12) | (block[4] << 4) | (block[5] >> 4)
    adc_h = (block[6] << 8) | block[7] if len(block) >= DATA_LENGTH_BME280 else None
    return RawSample(adc_p=adc_p, adc_t=adc_t, adc_h=adc_h)


# -- the driver ------------------------------------------------------------------------


class RegisterBus(Protocol):
    """The three smbus2 ``SMBus`` methods this driver uses."""

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int: ...

    def write_byte_data(
        self, i2c_addr: int, register: int, value: int, force: bool | None = None
    ) -> None: ...

    def read_i2c_block_data(
        self, i2c_addr: int, register: int, length: int, force: bool | None = None
    ) -> list[int]: ...


def _chip_name(chip_id: int) -> str | None:
    if chip_id == CHIP_ID_BME280:
        return "BME280"
    if chip_id in CHIP_IDS_BMP280:
        return "BMP280"
    return None


@dataclass(frozen=True, kw_only=True)
class Options(DriverOptions):
    """The keyword options of :class:`BME280`, as the config's options table gives them."""

    driver_name = NAME

    oversampling_temperature: int = field(
        default=1,
        metadata={
            "description": "Temperature oversampling ×1…×16; cannot be skipped (pressure and humidity need it)."
        },
    )
    oversampling_pressure: int = field(
        default=1, metadata={"description": "Pressure oversampling ×1…×16, or 0 to skip pressure."}
    )
    oversampling_humidity: int = field(
        default=1,
        metadata={
            "description": "Humidity oversampling ×1…×16, or 0 to skip humidity (ignored on a BMP280)."
        },
    )
    iir_filter: int = field(
        default=0, metadata={"description": "IIR filter coefficient for temperature and pressure; 0 = off."}
    )

    def __post_init__(self) -> None:
        for option, allowed in (
            ("oversampling_temperature", (1, 2, 4, 8, 16)),
            ("oversampling_pressure", tuple(OVERSAMPLING_CODES)),
            ("oversampling_humidity", tuple(OVERSAMPLING_CODES)),
            ("iir_filter", tuple(FILTER_CODES)),
        ):
            value = getattr(self, option)
            # The type first: 4.0 == 4 and True == 1, so membership alone would let them through.
            if not isinstance(value, int) or isinstance(value, bool) or value not in allowed:
                hint = (
                    " (pressure and humidity compensation need temperature)"
                    if isinstance(value, int) and value == 0
                    else ""
                )
                choices = ", ".join(str(a) for a in allowed)
                raise OptionError(NAME, option, f"must be one of {choices}{hint}", value=value)


class BME280:
    """A BME280 (or BMP280) on I2C, measuring in forced mode.

    Start-up (DS §3.3, §5.4): read the chip id, soft-reset, wait for the NVM copy, read the
    calibration, then in sleep mode write ctrl_hum, ctrl_meas and config, one register per
    write (I2C writes are address/data pairs, without auto-increment).  A failing chip-id
    read means no chip answers (:class:`ChipNotFoundError`); bus failures after that are
    :class:`BusError`.
    """

    def __init__(
        self,
        bus: RegisterBus,
        address: int = DEFAULT_ADDRESS,
        *,
        clock: Clock = SYSTEM_CLOCK,
        oversampling_temperature: int = 1,
        oversampling_pressure: int = 1,
        oversampling_humidity: int = 1,
        iir_filter: int = 0,
    ) -> None:
        if address not in ADDRESSES:
            where = f"0x{address:02x}" if isinstance(address, int) else repr(address)
            raise ValueError(f"address {where} is not a BME280 address (0x76 or 0x77)")
        # The rules live in Options, so a script and the agent's config check see the same errors.
        Options(
            oversampling_temperature=oversampling_temperature,
            oversampling_pressure=oversampling_pressure,
            oversampling_humidity=oversampling_humidity,
            iir_filter=iir_filter,
        )
        self._bus = bus
        self.address = address
        self._clock = clock
        self.oversampling_temperature = oversampling_temperature
        self.oversampling_pressure = oversampling_pressure
        self.oversampling_humidity = oversampling_humidity
        self.iir_filter = iir_filter
        self.chip_id, self.model = self._probe()
        self.has_humidity = self.chip_id == CHIP_ID_BME280
        self._osr_h = oversampling_humidity if self.has_humidity else 0
        self._ctrl_meas = OSRS_P.put(
            OSRS_T.put(0, OVERSAMPLING_CODES[oversampling_temperature]),
            OVERSAMPLING_CODES[oversampling_pressure],
        )
        self._t_meas_max = measurement_time_s(oversampling_temperature, oversampling_pressure, self._osr_h)
        self.calibration = self._start()

    # -- public API ------------------------------------------------------------------------

    def read(self) -> dict[str, float]:
        """Trigger one forced conversion and return the compensated values."""
        raw = self._measure()
        cal = self.calibration
        t_fine = cal.t_fine(raw.adc_t)
        values = {"temperature_c": cal.temperature_centi_c(t_fine) / 100.0}
        if self.oversampling_pressure:
            p = cal.pressure_q24_8(raw.adc_p, t_fine)
            if p is not None:
                values["pressure_pa"] = p / 256.0
        if self._osr_h and raw.adc_h is not None:
            values["relative_humidity_pct"] = cal.humidity_q22_10(raw.adc_h, t_fine) / 1024.0
        return values

    def self_test(self) -> SelfTestResult:
        """Chip id, status bits, calibration (re-read and sanity), and one measurement in range.

        The chip has no built-in self-test; this checks what the registers allow.
        """
        try:
            chip_id = self._read_byte(Reg.CHIP_ID, "reading the chip id")
            if chip_id != self.chip_id:
                return _failed(f"chip id now reads 0x{chip_id:02x}, was 0x{self.chip_id:02x} at start-up")
            status = self._read_byte(Reg.STATUS, "reading status")
            if STATUS_IM_UPDATE.get(status) or STATUS_MEASURING.get(status):
                return _failed(f"status 0x{status:02x}: NVM copy or conversion running while asleep")
            tp, h = self._read_calibration()
            problem = calibration_problem(tp, h)
            if problem is not None:
                return _failed(problem)
            if Calibration.from_registers(tp, h) != self.calibration:
                return _failed("calibration differs from the copy read at start-up (bus or NVM corruption)")
            values = self.read()
        except NotReadyError:
            raise  # no value to judge yet (a reset it just repaired): the test cannot judge
        except DriverError as exc:
            return _failed(str(exc))
        low, high = TEMPERATURE_RANGE_C
        if not low <= values["temperature_c"] <= high:
            return _failed(f"temperature {values['temperature_c']} °C outside {low} … {high}", values)
        low, high = PRESSURE_RANGE_PA
        if "pressure_pa" in values and not low <= values["pressure_pa"] <= high:
            return _failed(f"pressure {values['pressure_pa']} Pa outside {low} … {high}", values)
        detail = f"{self.model} chip id 0x{chip_id:02x}, status idle, calibration consistent, values in range"
        return SelfTestResult(passed=True, detail=detail, measurements=values)

    # -- start-up and measurement ------------------------------------------------------------

    def _probe(self) -> tuple[int, str]:
        try:
            chip_id = self._bus.read_byte_data(self.address, Reg.CHIP_ID)
        except OSError as exc:
            raise ChipNotFoundError(
                f"no BME280/BMP280 answers at I2C address 0x{self.address:02x} (errno {exc.errno})"
            ) from exc
        name = _chip_name(chip_id)
        if name is None:
            other = _OTHER_CHIPS.get(chip_id)
            seen = f" ({other}?)" if other else ""
            raise WrongChipError(
                f"chip at 0x{self.address:02x} has id 0x{chip_id:02x}{seen}; expected 0x60 (BME280) "
                "or 0x58 (BMP280)"
            )
        return chip_id, name

    def _start(self) -> Calibration:
        self._write(Reg.RESET, RESET_COMMAND, "soft reset")
        self._clock.sleep(_STARTUP_S)
        self._wait_while(STATUS_IM_UPDATE, _NVM_COPY_TIMEOUT_S, "NVM copy after reset")
        tp, h = self._read_calibration()
        problem = calibration_problem(tp, h)
        if problem is not None:
            raise MalformedDataError(f"{self.model} at 0x{self.address:02x}: {problem}")
        self._configure()
        return Calibration.from_registers(tp, h)

    def _configure(self) -> None:
        if self.has_humidity:
            # ctrl_hum only takes effect with the ctrl_meas write that follows it (DS §5.4.3).
            self._write(Reg.CTRL_HUM, OSRS_H.put(0, OVERSAMPLING_CODES[self._osr_h]), "writing ctrl_hum")
        self._write(Reg.CTRL_MEAS, MODE.put(self._ctrl_meas, Mode.SLEEP), "writing ctrl_meas")
        # Config is written in sleep mode: in normal mode the chip may ignore it (DS §5.4.6).
        self._write(Reg.CONFIG, FILTER.put(0, FILTER_CODES[self.iir_filter]), "writing config")

    def _read_calibration(self) -> tuple[list[int], list[int] | None]:
        tp = self._read_block(Reg.CALIB_TP, CALIB_TP_LENGTH, "reading calibration at 0x88")
        h = (
            self._read_block(Reg.CALIB_H, CALIB_H_LENGTH, "reading calibration at 0xE1")
            if self.has_humidity
            else None
        )
        return tp, h

    def _measure(self) -> RawSample:
        self._write(Reg.CTRL_MEAS, MODE.put(self._ctrl_meas, Mode.FORCED), "starting a forced measurement")
        # Sleep the worst-case conversion time first: `measuring` may still read 0 right after
        # the trigger, and polling at once would return the previous sample.
        self._clock.sleep(self._t_meas_max)
        self._wait_while(STATUS_MEASURING, _MEASUREMENT_GRACE_S, "forced measurement")
        length = DATA_LENGTH_BME280 if self.has_humidity else DATA_LENGTH_BMP280
        # One burst read from ctrl_hum: the chip shadows the data registers for the whole
        # transaction, and the control registers show whether it was reset meanwhile.
        # (A BMP280 has no ctrl_hum: its burst starts at status.)
        start = Reg.CTRL_HUM if self.has_humidity else Reg.STATUS
        control = Reg.DATA - start
        block = self._read_block(start, control + length, "reading the control and data registers")
        self._check_configuration([0x00] * (start - Reg.CTRL_HUM) + block[:control])
        raw = parse_data(block[control:])
        self._check_not_skipped(raw)
        return raw

    def _check_configuration(self, control: Sequence[int]) -> None:
        """A reset (brown-out, ESD) puts ctrl_hum, ctrl_meas and config back to 0x00: humidity
        is then skipped and the filter off, and the data may be the reset values.  Write the
        configuration again and refuse this sample."""
        ctrl_hum, ctrl_meas, config = control[0], control[2], control[3]
        lost = []
        if self.has_humidity and OSRS_H.get(ctrl_hum) != OVERSAMPLING_CODES[self._osr_h]:
            lost.append(f"ctrl_hum 0x{ctrl_hum:02x}")
        settings_mask = OSRS_T.mask | OSRS_P.mask
        if ctrl_meas & settings_mask != self._ctrl_meas & settings_mask:
            lost.append(f"ctrl_meas 0x{ctrl_meas:02x}")
        if FILTER.get(config) != FILTER_CODES[self.iir_filter]:
            lost.append(f"config 0x{config:02x}")
        if lost:
            self._configure()
            raise ChipResetError(
                self._where(
                    f"the chip lost its settings ({', '.join(lost)}): reset by a brown-out or ESD? "
                    "Configuration written again; this sample is discarded"
                )
            )

    def _check_not_skipped(self, raw: RawSample) -> None:
        """The datasheet's "skipped" codes (also the power-on values) are never measurements."""
        skipped = []
        if raw.adc_t == SKIPPED_20BIT:
            skipped.append("temperature 0x80000")
        if self.oversampling_pressure and raw.adc_p == SKIPPED_20BIT:
            skipped.append("pressure 0x80000")
        if self._osr_h and raw.adc_h == SKIPPED_16BIT:
            skipped.append("humidity 0x8000")
        if skipped:
            raise NotReadyError(
                self._where(
                    f"{', '.join(skipped)}: the datasheet's 'skipped' value, no conversion result "
                    "(chip reset during the measurement?)"
                )
            )

    def _wait_while(self, flag: BitField, timeout_s: float, what: str) -> None:
        deadline = self._clock.monotonic() + timeout_s
        while True:
            status = self._read_byte(Reg.STATUS, "reading status")
            if not flag.get(status):
                return
            if self._clock.monotonic() >= deadline:
                raise SensorTimeoutError(
                    f"{self.model} at 0x{self.address:02x}: {what} not finished after "
                    f"{timeout_s * 1000:.0f} ms (status 0x{status:02x})"
                )
            self._clock.sleep(_POLL_S)

    # -- bus access: OSError becomes BusError, keeping errno ------------------------------

    def _where(self, what: str) -> str:
        return f"{self.model} at 0x{self.address:02x}: {what}"

    def _read_byte(self, register: Reg, what: str) -> int:
        try:
            return self._bus.read_byte_data(self.address, register)
        except OSError as exc:
            raise BusError.from_os_error(self._where(what), exc) from exc

    def _read_block(self, register: Reg, length: int, what: str) -> list[int]:
        try:
            data = list(self._bus.read_i2c_block_data(self.address, register, length))
        except OSError as exc:
            raise BusError.from_os_error(self._where(what), exc) from exc
        if len(data) != length:
            raise MalformedDataError(self._where(f"{what}: got {len(data)} bytes, expected {length}"))
        return data

    def _write(self, register: Reg, value: int, what: str) -> None:
        try:
            self._bus.write_byte_data(self.address, register, value)
        except OSError as exc:
            raise BusError.from_os_error(self._where(what), exc) from exc


def _failed(detail: str, values: dict[str, float] | None = None) -> SelfTestResult:
    return SelfTestResult(passed=False, detail=detail, measurements=values or {})


def identify(bus: RegisterBus, address: int) -> str | None:
    """Read only the chip id register (0xD0); name a BME280 or BMP280, else None.  Never raises."""
    try:
        chip_id = bus.read_byte_data(address, Reg.CHIP_ID)
    except OSError:
        return None
    name = _chip_name(chip_id)
    return f"{name} (chip id 0x{chip_id:02x})" if name else None


DRIVER = DriverSpec(
    name=NAME,
    bus="i2c",
    quantities=(
        # Resolutions: BST-BME280-DS002 table 1-3 (0.01 °C, 0.18 Pa, 0.008 %RH).
        Quantity("temperature_c", "°C", "air temperature", resolution=0.01),
        Quantity(
            "pressure_pa",
            "Pa",
            "barometric pressure at the sensor (not reduced to sea level)",
            resolution=0.18,
        ),
        Quantity(
            "relative_humidity_pct", "%RH", "relative humidity (BME280 only, not BMP280)", resolution=0.008
        ),
    ),
    factory=BME280,
    description="Bosch BME280 humidity/pressure/temperature sensor; a BMP280 is recognised (no humidity)",
    addresses=ADDRESSES,
    identify=identify,
    options=Options,
)
