"""Texas Instruments ADS1115: 16-bit, 4-input delta-sigma ADC with PGA, on I2C.

Written from the TI datasheet SBAS444 (ADS111x, rev. D), §8.5–8.6: pointer register,
Config register (reset 0x8583), Lo_thresh / Hi_thresh (reset 0x8000 / 0x7FFF), and
the output codes (+FS = 0x7FFF, -FS = 0x8000, LSB = FSR / 2^15).

Registers are 16 bits, most significant byte first, so the driver uses
``write_i2c_block_data`` / ``read_i2c_block_data``; the SMBus word calls would swap
the bytes (SMBus words are LSB first).

Each reading is a single-shot conversion on one single-ended input (AINx against GND):
write the Config word with OS = 1, sleep 1/DR plus the ±10 % data-rate tolerance, poll
OS until it reads 1 (idle) with a timeout, then read the Conversion register.  Reading
before OS = 1 would return the previous channel's result.

Scaling: a channel's voltage can also be reported as a physical quantity through a
linear map, e.g. a 4–20 mA level transmitter across a 150 Ω shunt (0.6–3.0 V) as
0–5 m of water.  Readings a little outside the input range are still accepted
(default margins follow NAMUR NE 43: 3.8 mA and 20.5 mA on a 4–20 mA loop); beyond
that the loop is broken or the transmitter signals a fault, so the scaled value is
left out of ``read()`` (the voltage is still reported) and a warning is logged once.
``clamp`` pins accepted readings to the output range but never turns a wire break
into a number.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, cast

from edge_drivers.api import (
    DriverOptions,
    DriverSpec,
    Quantity,
    SelfTestResult,
    SMBusLike,
    is_finite_number,
    is_plain_int,
)
from edge_drivers.clock import SYSTEM_CLOCK, Clock
from edge_drivers.errors import (
    BusError,
    ChipNotFoundError,
    DataIntegrityError,
    MalformedDataError,
    OptionError,
    SensorTimeoutError,
    WrongChipError,
)

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = 0x48
ADDRESSES = (0x48, 0x49, 0x4A, 0x4B)  # ADDR pin to GND, VDD, SDA, SCL

# -- Register map (SBAS444 §8.6) ---------------------------------------------------------

REG_CONVERSION = 0x00
REG_CONFIG = 0x01
REG_LO_THRESH = 0x02
REG_HI_THRESH = 0x03
REGISTER_NAMES = {REG_CONVERSION: "Conversion", REG_CONFIG: "Config", REG_LO_THRESH: "Lo_thresh", REG_HI_THRESH: "Hi_thresh"}  # fmt: skip

CONFIG_RESET = 0x8583
LO_THRESH_RESET = 0x8000
HI_THRESH_RESET = 0x7FFF


@dataclass(frozen=True)
class BitField:
    """A field of the Config register."""

    shift: int
    width: int

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.shift

    def encode(self, value: int) -> int:
        if not 0 <= value < 1 << self.width:
            raise ValueError(f"{value} does not fit in {self.width} bits")
        return value << self.shift

    def decode(self, word: int) -> int:
        return (word & self.mask) >> self.shift


OS = BitField(15, 1)  # write 1: start a single conversion; read 1: idle
MUX = BitField(12, 3)
PGA = BitField(9, 3)
MODE = BitField(8, 1)  # 1: single-shot / power-down
DR = BitField(5, 3)
COMP_MODE = BitField(4, 1)
COMP_POL = BitField(3, 1)
COMP_LAT = BitField(2, 1)
COMP_QUE = BitField(0, 2)

MODE_CONTINUOUS = 0
MODE_SINGLE_SHOT = 1
COMP_QUE_DISABLE = 0b11  # comparator off, ALERT/RDY high-impedance

# MUX code -> (positive input, negative input or None for GND).
MUX_INPUTS: tuple[tuple[int, int | None], ...] = (
    (0, 1), (0, 3), (1, 3), (2, 3), (0, None), (1, None), (2, None), (3, None),
)  # fmt: skip
# PGA code -> full-scale range, volts (codes 101, 110, 111 are all ±0.256 V).
PGA_FSR: tuple[float, ...] = (6.144, 4.096, 2.048, 1.024, 0.512, 0.256, 0.256, 0.256)
FSR_CODES: dict[float, int] = {6.144: 0, 4.096: 1, 2.048: 2, 1.024: 3, 0.512: 4, 0.256: 5}
# DR code -> samples per second.
DATA_RATES: tuple[int, ...] = (8, 16, 32, 64, 128, 250, 475, 860)

# -- Timing ------------------------------------------------------------------------------

DATA_RATE_TOLERANCE = 0.10  # "data rate variation, all data rates: -10 % … +10 %"
CONVERSION_MARGIN_S = 0.0005
POLL_INTERVAL_S = 0.001
CONVERSION_TIMEOUT_MARGIN_S = 0.01

_VOLTAGE_NAME = re.compile(r"^ain[0-3]_voltage_v$")


# -- Pure functions ------------------------------------------------------------------------


def config_word(channel: int, fsr: float, data_rate: int, *, start: bool) -> int:
    """The Config word for a single-shot conversion of AIN``channel`` against GND, comparator off."""
    return (
        OS.encode(int(start))
        | MUX.encode(MUX_INPUTS.index((channel, None)))
        | PGA.encode(FSR_CODES[fsr])
        | MODE.encode(MODE_SINGLE_SHOT)
        | DR.encode(DATA_RATES.index(data_rate))
        | COMP_QUE.encode(COMP_QUE_DISABLE)
    )


def signed16(raw: int) -> int:
    return raw - 0x10000 if raw & 0x8000 else raw


def code_to_volts(raw: int, fsr: float) -> float:
    """V = code * FSR / 2^15, the code being 16-bit two's complement."""
    return signed16(raw) * fsr / 32768


def is_saturated(raw: int) -> bool:
    """0x7FFF / 0x8000: the input is at or beyond ±FSR, so the code is a limit, not a value."""
    return raw in (0x7FFF, 0x8000)


# -- Options -------------------------------------------------------------------------------

NAME = "ads1115"


@dataclass(frozen=True, kw_only=True)
class ChannelScaling(DriverOptions):
    """A linear map from one input's voltage to a named physical quantity."""

    driver_name = NAME

    channel: int = field(metadata={"description": "Input (0..3 for AIN0..AIN3) whose voltage is scaled."})
    quantity: str = field(
        metadata={"description": "Name of the scaled quantity: snake_case, unit last (water_level_m)."}
    )
    input_min: float = field(
        metadata={"description": "Voltage at the bottom of the range (0.6 V = 4 mA on 150 Ω)."}
    )
    input_max: float = field(
        metadata={"description": "Voltage at the top of the range (3.0 V = 20 mA on 150 Ω)."}
    )
    output_min: float = field(metadata={"description": "Quantity value at input_min."})
    output_max: float = field(metadata={"description": "Quantity value at input_max."})
    clamp: bool = field(
        default=False, metadata={"description": "Pin accepted readings to output_min..output_max."}
    )
    underrange_margin: float = field(
        default=0.0125,
        metadata={
            "description": "Fraction of the input span still accepted below input_min; lower means a fault "
            "(default 1.25 %: 3.8 mA on a 4–20 mA loop, NAMUR NE 43)."
        },
    )
    overrange_margin: float = field(
        default=0.03125,
        metadata={
            "description": "Fraction of the input span still accepted above input_max; higher means a fault "
            "(default 3.125 %: 20.5 mA on a 4–20 mA loop, NAMUR NE 43)."
        },
    )

    def __post_init__(self) -> None:
        if not is_plain_int(self.channel) or self.channel not in range(4):
            raise OptionError(NAME, "channel", "must be 0, 1, 2 or 3 (AIN0..AIN3)", value=self.channel)
        if not isinstance(self.quantity, str):
            raise OptionError(NAME, "quantity", "must be a string", value=self.quantity)
        try:
            Quantity(self.quantity, unit="")  # the same naming rule as every declared quantity
        except ValueError:
            raise OptionError(
                NAME, "quantity", "must be snake_case with the unit last (water_level_m)", value=self.quantity
            ) from None
        if _VOLTAGE_NAME.match(self.quantity):
            raise OptionError(
                NAME, "quantity", "is already the name of a raw input voltage", value=self.quantity
            )
        for name in ("input_min", "input_max", "output_min", "output_max"):
            if not is_finite_number(getattr(self, name)):
                raise OptionError(NAME, name, "must be a finite number", value=getattr(self, name))
        # Each end finite is not enough: scale() divides by and multiplies with the spans.
        for low, high in (("input_min", "input_max"), ("output_min", "output_max")):
            if not math.isfinite(getattr(self, high) - getattr(self, low)):
                raise OptionError(
                    NAME, high, f"is too far from {low} to compute with", value=getattr(self, high)
                )
        if not isinstance(self.clamp, bool):
            raise OptionError(NAME, "clamp", "must be true or false", value=self.clamp)
        for name in ("underrange_margin", "overrange_margin"):
            margin = getattr(self, name)
            if not is_finite_number(margin) or not 0.0 <= margin <= 1.0:
                raise OptionError(NAME, name, "must be a fraction from 0 to 1", value=margin)
        if self.input_max <= self.input_min:
            raise OptionError(
                NAME, "input_max", f"must be greater than input_min ({self.input_min})", value=self.input_max
            )
        if self.output_max == self.output_min:
            raise OptionError(
                NAME, "output_max", f"must differ from output_min ({self.output_min})", value=self.output_max
            )

    def accepted_range(self) -> tuple[float, float]:
        span = self.input_max - self.input_min
        return self.input_min - self.underrange_margin * span, self.input_max + self.overrange_margin * span

    def scale(self, volts: float) -> float | None:
        """The quantity for ``volts``, or None when the input is outside the accepted band."""
        lo, hi = self.accepted_range()
        if not lo <= volts <= hi:
            return None
        fraction = (volts - self.input_min) / (self.input_max - self.input_min)
        value = self.output_min + fraction * (self.output_max - self.output_min)
        if self.clamp:
            bottom, top = sorted((self.output_min, self.output_max))
            value = min(max(value, bottom), top)
        return value


def _scaling(entry: object) -> ChannelScaling:
    """A ``scaling`` entry as given to the driver: a :class:`ChannelScaling` or a table of its fields."""
    if isinstance(entry, ChannelScaling):
        return entry
    if not isinstance(entry, Mapping) or not all(isinstance(key, str) for key in entry):
        raise OptionError(NAME, (), "must be a table of channel, quantity, input_min, …", value=entry)
    # An unknown key is ChannelScaling's own error; a missing one would be __init__'s TypeError.
    missing = [f.name for f in fields(ChannelScaling) if f.name not in entry and _required(f)]
    if missing:
        raise OptionError(NAME, missing[0], "required but missing")
    return ChannelScaling(**entry)


def _scalings(entries: object) -> tuple[ChannelScaling, ...]:
    if isinstance(entries, str | bytes | Mapping) or not isinstance(entries, Sequence):
        raise OptionError(NAME, "scaling", "must be a list of tables", value=entries)
    out = []
    for i, entry in enumerate(entries):
        try:
            out.append(_scaling(entry))
        except OptionError as exc:
            raise exc.within("scaling", i) from None
    return tuple(out)


def _required(f: Field[Any]) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


@dataclass(frozen=True, kw_only=True)
class Options(DriverOptions):
    """Keyword options of :class:`ADS1115`."""

    driver_name = NAME

    channels: tuple[int, ...] = field(
        default=(0, 1, 2, 3), metadata={"description": "Single-ended inputs to read (0..3 for AIN0..AIN3)."}
    )
    gain: float = field(
        default=4.096,
        metadata={
            "description": "Full-scale range in volts: 6.144, 4.096, 2.048, 1.024, 0.512 or 0.256.  "
            "±4.096 V covers 0–3.3 V inputs; inputs must never exceed VDD whatever the range."
        },
    )
    data_rate: int = field(
        default=128, metadata={"description": "Samples per second: 8, 16, 32, 64, 128, 250, 475 or 860."}
    )
    scaling: tuple[ChannelScaling, ...] = field(
        default=(), metadata={"description": "Optional linear scaling of input voltages to named quantities."}
    )

    def __post_init__(self) -> None:
        if isinstance(self.channels, str | bytes) or not isinstance(self.channels, Sequence):
            raise OptionError(NAME, "channels", "must be a list of inputs (0..3)", value=self.channels)
        channels = tuple(self.channels)
        if not channels:
            raise OptionError(NAME, "channels", "must list at least one input (0..3)", value=self.channels)
        if not all(is_plain_int(c) and c in range(4) for c in channels):
            raise OptionError(NAME, "channels", "each must be 0, 1, 2 or 3 (AIN0..AIN3)", value=self.channels)
        if len(set(channels)) != len(channels):
            raise OptionError(NAME, "channels", "each channel may be listed once", value=self.channels)
        if not is_finite_number(self.gain) or self.gain not in FSR_CODES:
            choices = ", ".join(str(g) for g in FSR_CODES)
            raise OptionError(NAME, "gain", f"must be one of {choices} (volts full scale)", value=self.gain)
        if not is_plain_int(self.data_rate) or self.data_rate not in DATA_RATES:
            choices = ", ".join(str(r) for r in DATA_RATES)
            raise OptionError(
                NAME, "data_rate", f"must be one of {choices} (samples per second)", value=self.data_rate
            )
        scaling = _scalings(self.scaling)
        first_use: dict[str, int] = {}
        for i, s in enumerate(scaling):
            if s.quantity in first_use:
                raise OptionError(
                    NAME,
                    ("scaling", i, "quantity"),
                    f"{s.quantity!r} is already scaling[{first_use[s.quantity]}]; each quantity name may be used once",
                )
            first_use[s.quantity] = i
            if s.channel not in channels:
                raise OptionError(
                    NAME,
                    ("scaling", i, "channel"),
                    f"channel {s.channel} ({s.quantity}) is not in channels {list(channels)}",
                )
        # Frozen, so the normalised values (lists from a script, tables as ChannelScaling)
        # go in through object.__setattr__, as dataclasses' own __init__ does.
        object.__setattr__(self, "channels", channels)
        object.__setattr__(self, "scaling", scaling)


# -- Driver --------------------------------------------------------------------------------


class ADS1115:
    """An ADS1115 on an smbus2-compatible bus, read one single-shot conversion at a time."""

    def __init__(
        self,
        bus: SMBusLike,
        address: int = DEFAULT_ADDRESS,
        *,
        clock: Clock = SYSTEM_CLOCK,
        channels: Sequence[int] = (0, 1, 2, 3),
        gain: float = 4.096,
        data_rate: int = 128,
        scaling: Sequence[ChannelScaling | Mapping[str, Any]] = (),
    ) -> None:
        # The values go to Options as given: its checks come before any conversion (tuple(5)
        # would be a TypeError), and it stores them normalised (tuples, ChannelScaling).
        opts = Options(
            channels=cast(tuple[int, ...], channels),
            gain=gain,
            data_rate=data_rate,
            scaling=cast(tuple[ChannelScaling, ...], scaling),
        )
        self._bus = bus
        self._address = address
        self._clock = clock
        self._channels = opts.channels
        self._fsr = opts.gain
        self._data_rate = opts.data_rate
        self._scaling = opts.scaling
        self._problems: set[str] = set()  # keys whose problem was logged
        try:
            self._start()
        except BusError as exc:
            raise ChipNotFoundError(f"no ADS1115 answers: {exc}") from exc

    @property
    def _name(self) -> str:
        return f"ADS1115 at 0x{self._address:02x}"

    def _start(self) -> None:
        self._read_register(REG_CONFIG)
        # There is no ID register.  The ADS1115's thresholds keep all 16 bits; an ADS1015
        # (or a temperature sensor such as a TMP102 at the same addresses) has fixed
        # low bits, so a write of the 4 low bits does not read back.
        original = self._read_register(REG_LO_THRESH)
        probe = original ^ 0x000F
        self._write_register(REG_LO_THRESH, probe)
        echoed = self._read_register(REG_LO_THRESH)
        self._write_register(REG_LO_THRESH, original)
        if echoed != probe:
            raise WrongChipError(
                f"{self._name}: Lo_thresh read back 0x{echoed:04X} after 0x{probe:04X} was written; "
                "its low bits are fixed, so this is an ADS1015 (12-bit) or another chip, not an ADS1115"
            )
        # Power-down, single-shot, comparator off: the state every conversion starts from.
        idle = config_word(self._channels[0], self._fsr, self._data_rate, start=False)
        mismatch = self._write_and_verify_config(idle)
        if mismatch is not None:
            raise WrongChipError(f"{self._name}: {mismatch}; not an ADS1115?")
        # Left in continuous mode, the chip finishes the conversion under way before it
        # powers down, and ignores a start (OS = 1) until then.
        self._wait_until_idle(self._clock.monotonic(), 1.0 / DATA_RATES[0], "the conversion under way")

    # -- bus primitives ------------------------------------------------------------------

    def _read_register(self, register: int) -> int:
        what = f"{self._name}: reading {REGISTER_NAMES[register]}"
        try:
            data = self._bus.read_i2c_block_data(self._address, register, 2)
        except OSError as exc:
            raise BusError.from_os_error(what, exc) from exc
        if len(data) != 2:
            raise MalformedDataError(f"{what}: got {len(data)} bytes instead of 2")
        return (data[0] << 8) | data[1]

    def _write_register(self, register: int, word: int) -> None:
        try:
            self._bus.write_i2c_block_data(self._address, register, [word >> 8, word & 0xFF])
        except OSError as exc:
            what = f"{self._name}: writing 0x{word:04X} to {REGISTER_NAMES[register]}"
            raise BusError.from_os_error(what, exc) from exc

    def _write_and_verify_config(self, word: int) -> str | None:
        """Write a power-down Config word and read it back; a description of any mismatch."""
        self._write_register(REG_CONFIG, word)
        readback = self._read_register(REG_CONFIG)
        if (readback ^ word) & ~OS.mask:
            return f"Config read back 0x{readback:04X} after 0x{word:04X} was written"
        return None

    def _wait_until_idle(self, started: float, conversion_s: float, what: str) -> int:
        """Poll Config until OS reads 1 (no conversion running); the Config word read."""
        deadline = started + 2 * conversion_s + CONVERSION_TIMEOUT_MARGIN_S
        while not (config := self._read_register(REG_CONFIG)) & OS.mask:
            if self._clock.monotonic() >= deadline:
                elapsed_ms = (self._clock.monotonic() - started) * 1000
                raise SensorTimeoutError(
                    f"{self._name}: {what} still running after {elapsed_ms:.0f} ms "
                    f"(one conversion takes {conversion_s * 1000:.1f} ms)"
                )
            self._clock.sleep(POLL_INTERVAL_S)
        return config

    def _convert(self, channel: int) -> int:
        """One single-shot conversion of AIN``channel``: the raw Conversion register."""
        word = config_word(channel, self._fsr, self._data_rate, start=True)
        self._write_register(REG_CONFIG, word)
        started = self._clock.monotonic()
        nominal_s = 1.0 / self._data_rate
        self._clock.sleep(nominal_s * (1 + DATA_RATE_TOLERANCE) + CONVERSION_MARGIN_S)
        config = self._wait_until_idle(started, nominal_s, f"AIN{channel} conversion")
        if (config ^ word) & ~OS.mask:
            # Reset (power glitch, general call) or another master: the Conversion
            # register no longer holds this channel's result.
            raise DataIntegrityError(
                f"{self._name}: Config changed to 0x{config:04X} during the AIN{channel} conversion "
                f"(0x{word:04X} was written): chip reset or another bus master?"
            )
        return self._read_register(REG_CONVERSION)

    # -- public API ----------------------------------------------------------------------

    def read_voltage(self, channel: int) -> float:
        """One conversion of AIN``channel`` against GND, in volts.

        At ±full scale (codes 0x7FFF / 0x8000) the value is the range limit, not the
        input; :meth:`read` leaves such inputs out.
        """
        if channel not in range(4):
            raise ValueError(f"channel must be 0..3, not {channel!r}")
        return code_to_volts(self._convert(channel), self._fsr)

    def read(self) -> dict[str, float]:
        """``ain{N}_voltage_v`` for each configured channel, then each scaled quantity."""
        volts: dict[int, float] = {}
        for channel in self._channels:
            raw = self._convert(channel)
            name = f"ain{channel}_voltage_v"
            if is_saturated(raw):
                self._problem(
                    name,
                    f"AIN{channel} is at {'+' if raw == 0x7FFF else '-'}full scale (±{self._fsr} V): "
                    "the input is beyond the range, choose a larger gain",
                )
                continue
            self._problem(name, None)
            volts[channel] = code_to_volts(raw, self._fsr)
        out = {f"ain{channel}_voltage_v": v for channel, v in volts.items()}
        for scaling in self._scaling:
            if scaling.channel not in volts:
                continue
            value = scaling.scale(volts[scaling.channel])
            if value is None:
                lo, hi = scaling.accepted_range()
                self._problem(
                    scaling.quantity,
                    f"AIN{scaling.channel} at {volts[scaling.channel]:.3f} V is outside {lo:.3f}..{hi:.3f} V: "
                    f"{scaling.quantity} left out (broken loop or transmitter fault?)",
                )
                continue
            self._problem(scaling.quantity, None)
            out[scaling.quantity] = value
        return out

    def derive(self, values: Mapping[str, float]) -> dict[str, float | None]:
        """Each scaled quantity computed from its input voltage in ``values`` (e.g. a corrected one)."""
        return {
            s.quantity: s.scale(values[f"ain{s.channel}_voltage_v"])
            for s in self._scaling
            if f"ain{s.channel}_voltage_v" in values
        }

    def _problem(self, key: str, problem: str | None) -> None:
        """Log a reading problem when it appears and when it clears, not at every read."""
        if problem is not None and key not in self._problems:
            self._problems.add(key)
            log.warning("%s: %s", self._name, problem)
        elif problem is None and key in self._problems:
            self._problems.discard(key)
            log.info("%s: %s is back in range", self._name, key)

    def self_test(self) -> SelfTestResult:
        """Config read-back (two patterns, OS excluded) and one conversion completing in time."""
        channel = self._channels[0]
        idle = config_word(channel, self._fsr, self._data_rate, start=False)
        # Every writable field flipped except MODE and COMP_QUE, so no conversion starts
        # and the ALERT/RDY pin stays off.
        flipped = idle ^ (MUX.mask | PGA.mask | DR.mask | COMP_MODE.mask | COMP_POL.mask | COMP_LAT.mask)
        problems = [p for p in (self._write_and_verify_config(w) for w in (flipped, idle)) if p is not None]
        measurements: dict[str, float] = {}
        started = self._clock.monotonic()
        try:
            raw = self._convert(channel)
        except (SensorTimeoutError, DataIntegrityError) as exc:
            problems.append(str(exc))
        else:
            measurements = {
                "conversion_s": self._clock.monotonic() - started,
                f"ain{channel}_voltage_v": code_to_volts(raw, self._fsr),
            }
        detail = "; ".join(problems) or (
            f"Config read-back OK; AIN{channel} conversion done at {self._data_rate} SPS"
        )
        return SelfTestResult(passed=not problems, detail=detail, measurements=measurements)


def identify(bus: SMBusLike, address: int) -> str | None:
    """A heuristic (the chip has no ID register): Lo_thresh / Hi_thresh at their power-on values.

    Only reads, so the chip is left as it was.  An ADS1015 answers the same way (the
    driver tells them apart when it starts), and an ADS1115 whose thresholds were
    reprogrammed by other software is not recognised.
    """
    words = []
    try:
        for register in (REG_CONFIG, REG_LO_THRESH, REG_HI_THRESH):
            data = bus.read_i2c_block_data(address, register, 2)
            if len(data) != 2:
                return None
            words.append((data[0] << 8) | data[1])
    except OSError:
        return None
    config, lo, hi = words
    if (lo, hi) != (LO_THRESH_RESET, HI_THRESH_RESET):
        return None
    return f"ADS1115/ADS1015 (probable: no ID register; config 0x{config:04X})"


DRIVER = DriverSpec(
    name=NAME,
    bus="i2c",
    # Resolution: one LSB at the smallest range, 0.256 V / 2^15 (SBAS444 table 7-1).
    quantities=tuple(
        Quantity(f"ain{n}_voltage_v", "V", f"Voltage of AIN{n} against GND", resolution=0.256 / 2**15)
        for n in range(4)
    ),
    factory=ADS1115,
    description="TI ADS1115 16-bit 4-channel ADC, with optional linear scaling (e.g. 4–20 mA loops)",
    addresses=ADDRESSES,
    identify=identify,
    options=Options,
)
