"""Sensirion SHT3x-DIS (SHT30, SHT31, SHT35): relative humidity and temperature over I2C.

Written from the Sensirion datasheet "SHT3x-DIS", version 5 (May 2018): commands
(Tables 9–19), timing (Tables 4 and 5), CRC-8 (Table 20) and the conversion formulas
(§4.13).

The chip has no registers: the host writes 16-bit commands (MSB first) and reads back
16-bit words, each followed by a CRC-8.  So this driver talks through smbus2's
``i2c_rdwr`` with plain write and read messages; ``read_i2c_block_data`` would first
send a stray register byte that the chip takes as part of a command.

Measurements are single shot *without* clock stretching (0x2400 / 0x240B / 0x2416):
the Raspberry Pi's I2C controller mishandles clock stretching, so the driver sleeps
for the datasheet's maximum measurement time instead and retries while the chip
NACKs the read header (its way of saying "not ready yet").
"""

from __future__ import annotations

import contextlib
import errno
from dataclasses import dataclass, field
from typing import Literal

from smbus2 import i2c_msg

from edge_drivers.api import DriverOptions, DriverSpec, Quantity, SelfTestResult, SMBusLike
from edge_drivers.clock import SYSTEM_CLOCK, Clock
from edge_drivers.errors import (
    BusError,
    ChecksumError,
    ChipNotFoundError,
    DataIntegrityError,
    DriverError,
    MalformedDataError,
    OptionError,
    SensorTimeoutError,
    WrongChipError,
)

NAME = "sht3x"
DEFAULT_ADDRESS = 0x44
ADDRESSES = (0x44, 0x45)  # ADDR pin low / high (DS Table 8)

Repeatability = Literal["high", "medium", "low"]

# -- Commands (DS Tables 9, 13, 14, 16, 17, 19) -------------------------------------------

CMD_MEASURE_SINGLE_SHOT: dict[Repeatability, int] = {
    "high": 0x2400,  # no clock stretching
    "medium": 0x240B,
    "low": 0x2416,
}
CMD_BREAK = 0x3093
CMD_SOFT_RESET = 0x30A2
CMD_HEATER_ON = 0x306D
CMD_HEATER_OFF = 0x3066
CMD_READ_STATUS = 0xF32D
CMD_CLEAR_STATUS = 0x3041

# -- Timing (DS §4, Tables 4 and 5) ------------------------------------------------------

# Maximum measurement durations.  Table 4 (VDD 2.4–5.5 V) gives 15 / 6 / 4 ms, Table 5
# (2.15–2.4 V) 15.5 / 6.5 / 4.5 ms; the larger set is safe at any supply.
MEASUREMENT_TIME_S: dict[Repeatability, float] = {"high": 0.0155, "medium": 0.0065, "low": 0.0045}
COMMAND_SPACING_S = 0.001  # "a minimal waiting time of 1 ms" between commands (§4)
BREAK_TIME_S = 0.0015  # the break "takes 1 ms" (§4.8); a little more for clock slop
SOFT_RESET_TIME_S = 0.002  # t_SR is at most 1.5 ms (Table 4)
READ_TIMEOUT_S = 0.05  # after the maximum measurement time, keep retrying this long
READ_RETRY_S = 0.002
# A NACKed read header ("no data yet"): EREMOTEIO on the Raspberry Pi's i2c-bcm2835;
# ENXIO is what the kernel's I2C fault-code conventions prescribe, and some adapters use it.
NOT_READY_ERRNOS = frozenset({errno.EREMOTEIO, errno.ENXIO})

# -- Status register (DS Table 18) -------------------------------------------------------

STATUS_BITS: dict[str, int] = {
    "alert_pending": 15,
    "heater_on": 13,
    "rh_tracking_alert": 11,
    "t_tracking_alert": 10,
    "reset_detected": 4,
    "command_failed": 1,
    "write_checksum_failed": 0,
}

# The datasheet only says "a few degrees centigrade" (§4.10) for the heater; ask for a
# clearly measurable rise, well above the high-repeatability noise (0.04 °C typ).
HEATER_MIN_RISE_C = 0.5


# -- Pure functions ------------------------------------------------------------------------


def crc8(data: bytes) -> int:
    """Sensirion CRC-8: polynomial 0x31, init 0xFF, no reflection, no final XOR (Table 20)."""
    crc = 0xFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def temperature_c(raw: int) -> float:
    """T = -45 + 175 * S_T / (2^16 - 1) (§4.13)."""
    return -45.0 + 175 * raw / 65535


def relative_humidity_pct(raw: int) -> float:
    """RH = 100 * S_RH / (2^16 - 1) (§4.13).

    The datasheet applies no clamp, and none is needed: with 65535 as the divisor the
    16-bit range maps exactly onto 0..100 %RH.
    """
    return 100 * raw / 65535


def parse_words(data: bytes, what: str) -> list[int]:
    """Split ``word_msb word_lsb crc`` triplets, checking every CRC."""
    if len(data) % 3:
        raise MalformedDataError(f"{what}: {len(data)} bytes is not a whole number of word+CRC triplets")
    words = []
    for i in range(0, len(data), 3):
        expected = crc8(data[i : i + 2])
        if data[i + 2] != expected:
            raise ChecksumError(
                f"{what}: CRC mismatch in word {i // 3} (data {data[i : i + 2].hex()}, "
                f"CRC 0x{data[i + 2]:02X}, expected 0x{expected:02X})"
            )
        words.append((data[i] << 8) | data[i + 1])
    return words


@dataclass(frozen=True)
class Status:
    """The decoded status register (DS Table 18)."""

    raw: int
    alert_pending: bool
    heater_on: bool
    rh_tracking_alert: bool
    t_tracking_alert: bool
    reset_detected: bool
    command_failed: bool
    """The last command was not processed: invalid, or its built-in checksum failed."""
    write_checksum_failed: bool

    @classmethod
    def from_word(cls, word: int) -> Status:
        flags = {name: bool(word >> bit & 1) for name, bit in STATUS_BITS.items()}
        return cls(raw=word, **flags)


# -- Options -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Options(DriverOptions):
    """Keyword options of :class:`SHT3x`."""

    driver_name = NAME

    repeatability: Repeatability = field(
        default="high",
        metadata={
            "description": "Measurement repeatability: high (0.04 °C / 0.08 %RH typ, 15.5 ms), "
            "medium (6.5 ms) or low (4.5 ms)."
        },
    )
    heater_test_s: float = field(
        default=1.0,
        metadata={"description": "How long self_test() runs the heater before measuring again, in seconds."},
    )

    def __post_init__(self) -> None:
        if self.repeatability not in ("high", "medium", "low"):
            raise OptionError(
                NAME, "repeatability", "must be 'high', 'medium' or 'low'", value=self.repeatability
            )
        seconds = self.heater_test_s
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0.5 <= seconds <= 30.0:
            raise OptionError(NAME, "heater_test_s", "must be from 0.5 to 30 seconds", value=seconds)


# -- Driver --------------------------------------------------------------------------------


STARTUP_STATUS_ATTEMPTS = 3
"""Status reads at start-up before a CRC failure is believed (noise rarely repeats itself)."""


class _SameWrongAnswer(Exception):
    """Internal: the start-up status failed its CRC the same way every time."""


class SHT3x:
    """An SHT30/SHT31/SHT35 on an smbus2-compatible bus."""

    def __init__(
        self,
        bus: SMBusLike,
        address: int = DEFAULT_ADDRESS,
        *,
        clock: Clock = SYSTEM_CLOCK,
        repeatability: Repeatability = "high",
        heater_test_s: float = 1.0,
    ) -> None:
        opts = Options(repeatability=repeatability, heater_test_s=heater_test_s)
        self._bus = bus
        self._address = address
        self._clock = clock
        self._repeatability: Repeatability = opts.repeatability
        self._heater_test_s = opts.heater_test_s
        # Another program (or an ``identify`` probe) may have just sent a command.
        self._last_command_at = clock.monotonic()
        try:
            self._start()
        except BusError as exc:
            raise ChipNotFoundError(f"no SHT3x answers: {exc}") from exc
        except _SameWrongAnswer as exc:
            raise WrongChipError(
                f"{self._name}: a device answers but its status word fails the SHT3x CRC "
                f"{STARTUP_STATUS_ATTEMPTS} times alike ({exc.__cause__}); is another chip at this address?"
            ) from exc.__cause__

    @property
    def _name(self) -> str:
        return f"SHT3x at 0x{self._address:02x}"

    def _start(self) -> None:
        # A chip left in periodic mode by an earlier program ignores a soft reset (§4.8,
        # §4.9): stop it first.
        self._command(CMD_BREAK)
        self._clock.sleep(BREAK_TIME_S)
        self._command(CMD_SOFT_RESET)
        self._clock.sleep(SOFT_RESET_TIME_S)
        self._first_status()  # proves the CRC works, i.e. that this is an SHT3x
        # Alert-pending and reset-detected are set after any reset; clear them so a
        # later status() shows only what happened since start-up.
        self._command(CMD_CLEAR_STATUS)

    def _first_status(self) -> None:
        """The status word, read until its CRC holds.  A CRC error is the bus's (noise, a weak
        pull-up): it raises :class:`ChecksumError`.  Only the same failing answer every time
        says that another chip is answering (:class:`_SameWrongAnswer`, made a WrongChipError)."""
        failures: list[DataIntegrityError] = []
        for _ in range(STARTUP_STATUS_ATTEMPTS):
            try:
                self.status()
                return
            except DataIntegrityError as exc:
                failures.append(exc)
        if len({str(f) for f in failures}) == 1:
            raise _SameWrongAnswer() from failures[-1]
        raise failures[-1]

    # -- bus primitives ------------------------------------------------------------------

    def _command(self, command: int) -> None:
        self._clock.sleep(self._last_command_at + COMMAND_SPACING_S - self._clock.monotonic())
        try:
            self._bus.i2c_rdwr(i2c_msg.write(self._address, [command >> 8, command & 0xFF]))
        except OSError as exc:
            raise BusError.from_os_error(f"{self._name}: command 0x{command:04X}", exc) from exc
        finally:
            self._last_command_at = self._clock.monotonic()

    def _read_words(self, count: int, what: str) -> list[int]:
        """Read ``count`` words; a raw ``OSError`` (e.g. a NACK) is left to the caller."""
        msg = i2c_msg.read(self._address, 3 * count)
        self._bus.i2c_rdwr(msg)
        return parse_words(bytes(msg), f"{self._name}: {what}")

    def _measure(self) -> tuple[int, int]:
        """One single-shot measurement: raw (S_T, S_RH)."""
        self._command(CMD_MEASURE_SINGLE_SHOT[self._repeatability])
        started = self._clock.monotonic()
        self._clock.sleep(MEASUREMENT_TIME_S[self._repeatability])
        deadline = self._clock.monotonic() + READ_TIMEOUT_S
        while True:
            try:
                s_t, s_rh = self._read_words(2, "measurement")
                return s_t, s_rh
            except OSError as exc:
                if exc.errno not in NOT_READY_ERRNOS:
                    raise BusError.from_os_error(f"{self._name}: reading the measurement", exc) from exc
                if self._clock.monotonic() >= deadline:
                    waited_ms = (self._clock.monotonic() - started) * 1000
                    raise SensorTimeoutError(
                        f"{self._name}: no measurement {waited_ms:.0f} ms after the command "
                        "(the read is still NACKed: the chip never finished)"
                    ) from exc
                self._clock.sleep(READ_RETRY_S)

    # -- public API ----------------------------------------------------------------------

    def read(self) -> dict[str, float]:
        """One fresh single-shot measurement: ``temperature_c`` and ``relative_humidity_pct``."""
        s_t, s_rh = self._measure()
        return {"temperature_c": temperature_c(s_t), "relative_humidity_pct": relative_humidity_pct(s_rh)}

    def status(self) -> Status:
        """Read and decode the status register (the read itself changes nothing)."""
        self._command(CMD_READ_STATUS)
        try:
            (word,) = self._read_words(1, "status register")
        except OSError as exc:
            raise BusError.from_os_error(f"{self._name}: reading the status register", exc) from exc
        return Status.from_word(word)

    def self_test(self) -> SelfTestResult:
        """Heater plausibility check (§4.10): the heater must set its status bit and warm the chip.

        The heater is switched off again whatever happens.  Readings stay biased upwards
        for a while afterwards, as the chip cools down.
        """
        try:
            t_before = temperature_c(self._measure()[0])
            try:
                self._command(CMD_HEATER_ON)
                self._clock.sleep(self._heater_test_s)
                heater_went_on = self.status().heater_on
                t_after = temperature_c(self._measure()[0])
            except BaseException:
                # Never leave the heater running; the original error is the one to report.
                with contextlib.suppress(DriverError):
                    self._command(CMD_HEATER_OFF)
                raise
            self._command(CMD_HEATER_OFF)
            heater_went_off = not self.status().heater_on
        except DataIntegrityError as exc:
            return SelfTestResult(passed=False, detail=f"data failed its CRC during the heater test: {exc}")

        rise = t_after - t_before
        problems = []
        if not heater_went_on:
            problems.append("heater status bit did not go on")
        if not heater_went_off:
            problems.append("heater status bit did not go off")
        if rise < HEATER_MIN_RISE_C:
            problems.append(f"temperature rose {rise:.2f} °C, less than {HEATER_MIN_RISE_C} °C")
        detail = (
            "; ".join(problems)
            if problems
            else f"heater raised the temperature {rise:.2f} °C in {self._heater_test_s:g} s; CRCs OK"
        )
        return SelfTestResult(
            passed=not problems,
            detail=detail,
            measurements={"t_before_c": t_before, "t_after_c": t_after, "delta_c": rise},
        )


def identify(bus: SMBusLike, address: int) -> str | None:
    """Read the status register and check its CRC: an SHT3x if it matches.

    On an SHT3x this is only a status read.  Another kind of chip at the address sees
    a two-byte write (0xF3 0x2D), which a register-based chip takes as a register write.
    """
    read = i2c_msg.read(address, 3)
    try:
        bus.i2c_rdwr(i2c_msg.write(address, [CMD_READ_STATUS >> 8, CMD_READ_STATUS & 0xFF]))
        bus.i2c_rdwr(read)
        (word,) = parse_words(bytes(read), "status")
    except (OSError, DataIntegrityError):
        return None
    return f"SHT3x (status 0x{word:04X})"


DRIVER = DriverSpec(
    name=NAME,
    bus="i2c",
    quantities=(
        # One step of the 16-bit code (datasheet §4.13): 175/65535 °C, 100/65535 %RH.
        Quantity("temperature_c", "°C", "Air temperature", resolution=175 / 65535),
        Quantity("relative_humidity_pct", "%RH", "Relative humidity", resolution=100 / 65535),
    ),
    factory=SHT3x,
    description="Sensirion SHT30/SHT31/SHT35 humidity and temperature sensor (CRC-checked)",
    addresses=ADDRESSES,
    identify=identify,
    options=Options,
)
