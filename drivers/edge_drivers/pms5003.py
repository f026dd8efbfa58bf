"""Plantower PMS5003 laser particle counter on a 9600 8N1 serial line.

Written from the PMS5003 user manual v2.3 (32-byte data frame, host commands, the
30 s fan spin-up after wake-up) plus what the manual leaves out: mode and sleep
commands are answered with an 8-byte reply frame (jbanaszczyk/pms5003 ``pms.h``,
``RESPONSE_FRAME_SIZE``), and a receiver must sync on the two start bytes
``0x42 0x4D``, never on ``0x42`` alone, because the checksum low byte is often 0x42
(Adafruit_PM25AQI#10).

The bytes are handled by pure code that never touches the port:
:func:`parse_frame` checks and decodes one frame, and :class:`FrameReader` is fed
arbitrary bytes and returns the frames in them, resynchronising after garbage and
counting what it drops.  :class:`PMS5003` adds the port, the mode commands and the
timeouts.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Literal

from edge_drivers.api import DriverOptions, DriverSpec, Quantity, SelfTestResult, SerialLike, is_finite_number
from edge_drivers.clock import SYSTEM_CLOCK, Clock
from edge_drivers.errors import (
    BusError,
    ChecksumError,
    ChipNotFoundError,
    DriverError,
    MalformedDataError,
    NotReadyError,
    OptionError,
    SensorTimeoutError,
)

NAME = "pms5003"
Mode = Literal["active", "passive"]

START = b"\x42\x4d"
"""Both start bytes ("BM"): every frame, in either direction, begins with them."""
DATA_LENGTH = 28
"""Length field of a data frame: 13 data words + the checksum word."""
DATA_FRAME_SIZE = 4 + DATA_LENGTH
REPLY_LENGTH = 4
"""Length field of the reply to a mode or sleep command: command, data, checksum."""
REPLY_FRAME_SIZE = 4 + REPLY_LENGTH

CMD_MODE = 0xE1
"""Data 0: passive, 1: active."""
CMD_READ = 0xE2
"""Passive mode: send one data frame."""
CMD_POWER = 0xE4
"""Data 0: sleep (fan and laser off), 1: wake up."""

WARMUP_S = 30.0
"""Manual: "Stable data should be got at least 30 seconds after the sensor wakeup"."""

# The 13 data words of a data frame, in wire order (manual v2.3, "Appendix I").
DATA_WORDS: tuple[str, ...] = (
    "pm1_0_cf1_ugm3",
    "pm2_5_cf1_ugm3",
    "pm10_cf1_ugm3",
    "pm1_0_ugm3",
    "pm2_5_ugm3",
    "pm10_ugm3",
    "particles_0_3um_per_dl",
    "particles_0_5um_per_dl",
    "particles_1_0um_per_dl",
    "particles_2_5um_per_dl",
    "particles_5_0um_per_dl",
    "particles_10um_per_dl",
    "reserved",
)

QUANTITIES: tuple[Quantity, ...] = (
    Quantity("pm1_0_ugm3", "µg/m³", "PM1.0 mass concentration, atmospheric environment"),
    Quantity("pm2_5_ugm3", "µg/m³", "PM2.5 mass concentration, atmospheric environment"),
    Quantity("pm10_ugm3", "µg/m³", "PM10 mass concentration, atmospheric environment"),
    Quantity("pm1_0_cf1_ugm3", "µg/m³", 'PM1.0, CF=1 "standard particle" (industrial reference)'),
    Quantity("pm2_5_cf1_ugm3", "µg/m³", 'PM2.5, CF=1 "standard particle" (industrial reference)'),
    Quantity("pm10_cf1_ugm3", "µg/m³", 'PM10, CF=1 "standard particle" (industrial reference)'),
    Quantity("particles_0_3um_per_dl", "1/dL", "particles larger than 0.3 µm per 0.1 L of air"),
    Quantity("particles_0_5um_per_dl", "1/dL", "particles larger than 0.5 µm per 0.1 L of air"),
    Quantity("particles_1_0um_per_dl", "1/dL", "particles larger than 1.0 µm per 0.1 L of air"),
    Quantity("particles_2_5um_per_dl", "1/dL", "particles larger than 2.5 µm per 0.1 L of air"),
    Quantity("particles_5_0um_per_dl", "1/dL", "particles larger than 5.0 µm per 0.1 L of air"),
    Quantity("particles_10um_per_dl", "1/dL", "particles larger than 10 µm per 0.1 L of air"),
)

MAX_ERROR_RATE = 0.1
"""Self-test limit on the share of frames that failed the checksum or had a bad length."""
_PASSIVE_RETRY_S = 1.0
"""Passive mode: ask again if a request or its answer was lost (the answer takes ~35 ms)."""
_IDLE_POLL_S = 0.05
"""Pause after an empty read, so a port with timeout 0 does not spin."""
_FRAME_SIZES = {DATA_LENGTH: DATA_FRAME_SIZE, REPLY_LENGTH: REPLY_FRAME_SIZE}
"""Whole frame size for each length field a PMS5003 sends."""


# -- pure frame code ----------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One decoded data frame.  Counts are particles larger than the size per 0.1 L (dL)."""

    pm1_0_cf1_ugm3: int
    pm2_5_cf1_ugm3: int
    pm10_cf1_ugm3: int
    pm1_0_ugm3: int
    pm2_5_ugm3: int
    pm10_ugm3: int
    particles_0_3um_per_dl: int
    particles_0_5um_per_dl: int
    particles_1_0um_per_dl: int
    particles_2_5um_per_dl: int
    particles_5_0um_per_dl: int
    particles_10um_per_dl: int
    reserved: int = 0
    """Data word 13, reserved by the manual; units commonly put a version byte here."""

    def measurements(self) -> dict[str, float]:
        """The frame as ``{quantity name: value}`` in the units of :data:`QUANTITIES`."""
        return {q.name: float(getattr(self, q.name)) for q in QUANTITIES}

    def not_valid_yet(self) -> str | None:
        """Why this well-formed frame is not a measurement yet, or None.

        After power-up or wake-up the sensor sends frames of all zeros while its fan spins up,
        and some frames report a mass with no particle counted (PM10 = 32 µg/m³, every count
        0): a mass is computed from the counts, so such a frame is not one.  Neither is clean
        air: even very clean air has hundreds of particles > 0.3 µm per dL.
        """
        counts = [getattr(self, name) for name in DATA_WORDS[6:12]]
        masses = [getattr(self, name) for name in DATA_WORDS[:6]]
        if not any(counts) and not any(masses):
            return "all-zero frame: the sensor is warming up (fan spin-up after power-up or wake-up)"
        if not any(counts):
            return (
                f"frame reports a mass (PM10 {self.pm10_ugm3} µg/m³) but no particle counted: not yet valid"
            )
        return None

    def inconsistencies(self) -> list[str]:
        """Relations every genuine frame satisfies but a corrupted one may not.

        PM1.0 ⊂ PM2.5 ⊂ PM10 and "larger than 0.3 µm" ⊇ "larger than 0.5 µm" ⊇ …, so
        both mass sets and the counts can never increase with size.
        """
        problems = []
        for suffix in ("cf1_ugm3", "ugm3"):
            pm1, pm25, pm10 = (getattr(self, f"{size}_{suffix}") for size in ("pm1_0", "pm2_5", "pm10"))
            if not pm1 <= pm25 <= pm10:
                problems.append(f"PM1.0 <= PM2.5 <= PM10 violated ({suffix}: {pm1}, {pm25}, {pm10})")
        counts = [getattr(self, name) for name in DATA_WORDS[6:12]]
        if any(a < b for a, b in pairwise(counts)):
            problems.append(f"particle counts increase with size: {counts}")
        return problems


@dataclass(frozen=True)
class CommandReply:
    """The 8-byte frame a sensor sends back after a mode or sleep command."""

    command: int
    data: int


def checksum(data: bytes) -> int:
    """The PMS5003 checksum: the 16-bit sum of all bytes."""
    return sum(data) & 0xFFFF


def command(cmd: int, data: int = 0) -> bytes:
    """A 7-byte host command: 42 4D CMD DATAH DATAL sumH sumL."""
    body = START + bytes((cmd,)) + data.to_bytes(2, "big")
    return body + checksum(body).to_bytes(2, "big")


def build_frame(payload: bytes) -> bytes:
    """A sensor-to-host frame: start bytes, length field, ``payload``, checksum."""
    body = START + (len(payload) + 2).to_bytes(2, "big") + payload
    return body + checksum(body).to_bytes(2, "big")


def encode_frame(frame: Frame) -> bytes:
    """The 32 bytes a sensor sends for ``frame`` (used by the simulator and tests)."""
    return build_frame(struct.pack(">13H", *(getattr(frame, name) for name in DATA_WORDS)))


def _check(data: bytes, length: int, what: str) -> None:
    size = 4 + length
    if len(data) != size:
        raise MalformedDataError(f"PMS5003 {what} must be {size} bytes, got {len(data)}")
    if data[:2] != START:
        raise MalformedDataError(f"PMS5003 {what} must start with 42 4D, got {data[:2].hex(' ')}")
    field = int.from_bytes(data[2:4], "big")
    if field != length:
        raise MalformedDataError(f"PMS5003 {what}: length field is {field}, expected {length}")
    expected = checksum(data[:-2])
    received = int.from_bytes(data[-2:], "big")
    if received != expected:
        raise ChecksumError(
            f"PMS5003 {what}: checksum 0x{received:04X} != 0x{expected:04X} (sum of bytes 0..{size - 3})"
        )


def parse_frame(data: bytes) -> Frame:
    """Check and decode one 32-byte data frame.

    Raises :class:`MalformedDataError` for a wrong size, start or length field and
    :class:`ChecksumError` when the sum of bytes 0..29 is not the word in bytes 30..31.
    """
    _check(data, DATA_LENGTH, "data frame")
    return Frame(**dict(zip(DATA_WORDS, struct.unpack(">13H", data[4:30]), strict=True)))


def parse_reply(data: bytes) -> CommandReply:
    """Check and decode an 8-byte command reply (42 4D 00 04 CMD DATA sumH sumL)."""
    _check(data, REPLY_LENGTH, "command reply")
    return CommandReply(command=data[4], data=data[5])


class FrameReader:
    """Finds frames in a byte stream, whatever garbage, corruption or split it comes with.

    ``feed`` never raises for bad input: bad frames are counted and dropped.  A
    candidate frame starts at ``42 4D``; its length field must be that of a data frame
    (28) or of a command reply (4), otherwise the start was a false one.  After a
    failed candidate the search resumes two bytes further on, so a genuine frame that
    began inside the rejected bytes is still found.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self.frames_ok = 0
        """Data frames that passed every check."""
        self.reply_frames = 0
        """Valid command replies."""
        self.checksum_errors = 0
        """Candidates whose checksum did not match."""
        self.malformed_frames = 0
        """Start bytes followed by an impossible length field."""
        self.garbage_bytes = 0
        """Bytes skipped while searching for a start, rejected candidates included."""

    @property
    def error_rate(self) -> float:
        """Share of candidate frames that were rejected (0 before any frame)."""
        bad = self.checksum_errors + self.malformed_frames
        total = bad + self.frames_ok + self.reply_frames
        return bad / total if total else 0.0

    def bytes_needed(self) -> int:
        """How many more bytes complete the frame being assembled (a data frame if unknown)."""
        size = DATA_FRAME_SIZE
        if len(self._buf) >= 4 and self._buf[:2] == START:
            size = _FRAME_SIZES.get(int.from_bytes(self._buf[2:4], "big"), DATA_FRAME_SIZE)
        return max(1, size - len(self._buf))

    def feed(self, data: bytes) -> list[Frame | CommandReply]:
        """Add ``data`` and return the complete valid frames found, oldest first."""
        self._buf += data
        found: list[Frame | CommandReply] = []
        while True:
            start = self._buf.find(START)
            if start < 0:
                # A trailing 0x42 may be the first half of the next start.
                keep = 1 if self._buf.endswith(START[:1]) else 0
                self._skip(len(self._buf) - keep)
                return found
            self._skip(start)
            if len(self._buf) < 4:
                return found
            length = int.from_bytes(self._buf[2:4], "big")
            size = _FRAME_SIZES.get(length)
            if size is None:
                self.malformed_frames += 1
                self._skip(len(START))
                continue
            if len(self._buf) < size:
                return found
            raw = bytes(self._buf[:size])
            try:
                item = parse_frame(raw) if length == DATA_LENGTH else parse_reply(raw)
            except ChecksumError:
                self.checksum_errors += 1
                self._skip(len(START))
                continue
            del self._buf[:size]
            if isinstance(item, Frame):
                self.frames_ok += 1
            else:
                self.reply_frames += 1
            found.append(item)

    def _skip(self, count: int) -> None:
        self.garbage_bytes += count
        del self._buf[:count]


# -- the driver ---------------------------------------------------------------------------


MAX_WAIT_S = 3600.0
"""The longest timeout_s or warmup_s: a wait beyond an hour is a typo, and a huge one would
overflow the clock's sleep or leave a sensor's thread waiting forever."""


@dataclass(frozen=True, kw_only=True)
class Options(DriverOptions):
    """Options of :class:`PMS5003` (``[sensors.options]`` in the config)."""

    driver_name = NAME

    mode: Mode = field(
        default="active",
        metadata={
            "description": "active: the sensor sends a frame every ~2.3 s and read() takes the newest; "
            "passive: read() requests each frame (0xE2)"
        },
    )
    timeout_s: float = field(default=5.0, metadata={"description": "how long read() waits for a valid frame"})
    warmup_s: float = field(
        default=WARMUP_S,
        metadata={"description": "after wake(), frames are discarded this long while the fan spins up"},
    )

    def __post_init__(self) -> None:
        if self.mode not in ("active", "passive"):
            raise OptionError(NAME, "mode", "must be 'active' or 'passive'", value=self.mode)
        if not (is_finite_number(self.timeout_s) and 0 < self.timeout_s <= MAX_WAIT_S):
            raise OptionError(
                NAME,
                "timeout_s",
                f"must be a positive number of seconds, at most {MAX_WAIT_S:g}",
                value=self.timeout_s,
            )
        if not (is_finite_number(self.warmup_s) and 0 <= self.warmup_s <= MAX_WAIT_S):
            raise OptionError(
                NAME, "warmup_s", f"must be from 0 to {MAX_WAIT_S:g} seconds", value=self.warmup_s
            )


class PMS5003:
    """A PMS5003 on a pyserial-compatible ``port`` (9600 8N1, with a read timeout)."""

    def __init__(
        self,
        port: SerialLike,
        *,
        clock: Clock = SYSTEM_CLOCK,
        mode: Mode = "active",
        timeout_s: float = 5.0,
        warmup_s: float = WARMUP_S,
    ) -> None:
        # The rules live in Options, so a script and the agent's config check see the same errors.
        Options(mode=mode, timeout_s=timeout_s, warmup_s=warmup_s)
        self.port = port
        self.mode = mode
        self.timeout_s = timeout_s
        self.warmup_s = warmup_s
        self.reader = FrameReader()
        self.last_frame: Frame | None = None
        self._clock = clock
        self._name = str(getattr(port, "name", None) or getattr(port, "port", None) or "serial port")
        self._asleep = False
        self._warm_at: float | None = None
        # A sensor left in passive mode by an earlier program never sends on its own
        # (Adafruit_CircuitPython_PM25#9), so the mode is always set explicitly.
        try:
            self.port.write(command(CMD_MODE, 1 if mode == "active" else 0))
        except OSError as exc:
            raise ChipNotFoundError(f"PMS5003 on {self._name}: cannot send the mode command: {exc}") from exc

    def read(self) -> dict[str, float]:
        """One measurement: the newest frame in active mode, a requested one in passive mode."""
        self._finish_warmup()
        deadline = self._clock.monotonic() + self.timeout_s
        bad_before = self.reader.checksum_errors + self.reader.malformed_frames
        garbage_before = self.reader.garbage_bytes
        frame = self._drain()
        if self.mode == "passive":
            # Anything already buffered predates the request: not the answer to it.
            frame = None
            self._write(command(CMD_READ), "request a frame")
        if frame is None:
            frame = self._wait_for_frame(deadline, bad_before, garbage_before)
        self.last_frame = frame
        not_valid = frame.not_valid_yet()
        if not_valid is not None:
            raise NotReadyError(f"PMS5003 on {self._name}: {not_valid}")
        return frame.measurements()

    def sleep(self) -> None:
        """Stop the fan and laser (command 0xE4, data 0); the sensor stops sending."""
        self._write(command(CMD_POWER, 0), "send the sleep command")
        self._asleep = True
        self._warm_at = None

    def wake(self) -> None:
        """Wake the sensor; frames are discarded for ``warmup_s`` while the fan spins up."""
        self._write(command(CMD_POWER, 1), "send the wake-up command")
        self._asleep = False
        self._warm_at = self._clock.monotonic() + self.warmup_s

    def self_test(self) -> SelfTestResult:
        """Takes one measurement, then judges the frame error rate and the frame's consistency."""
        problem = ""
        try:
            self.read()
        except NotReadyError:
            raise  # warming up: the test cannot judge yet, which is not a failed sensor
        except DriverError as exc:
            problem = str(exc)
        reader = self.reader
        measurements = {
            "frames_ok": float(reader.frames_ok),
            "checksum_errors": float(reader.checksum_errors),
            "malformed_frames": float(reader.malformed_frames),
            "garbage_bytes": float(reader.garbage_bytes),
            "error_rate": reader.error_rate,
        }
        problems = [problem] if problem else []
        if reader.error_rate > MAX_ERROR_RATE:
            problems.append(
                f"frame error rate {reader.error_rate:.1%} exceeds {MAX_ERROR_RATE:.0%}: "
                "check wiring, cable length and ground"
            )
        if not problem and self.last_frame is not None:
            problems.extend(self.last_frame.inconsistencies())
        if problems:
            return SelfTestResult(False, "; ".join(problems), measurements)
        detail = (
            f"{reader.frames_ok} frames, {reader.checksum_errors + reader.malformed_frames} rejected "
            f"({reader.error_rate:.1%}); newest frame consistent"
        )
        return SelfTestResult(True, detail, measurements)

    # -- internals -------------------------------------------------------------------------

    def _finish_warmup(self) -> None:
        if self._warm_at is None:
            return
        remaining = self._warm_at - self._clock.monotonic()
        if remaining > self.timeout_s:
            raise SensorTimeoutError(
                f"PMS5003 on {self._name}: the fan is spinning up after wake-up; stable data in "
                f"{remaining:.0f} s (manual: at least 30 s after wake-up)"
            )
        self._clock.sleep(remaining)
        self._drain()  # frames sent during the spin-up are not trustworthy
        self._warm_at = None

    def _drain(self) -> Frame | None:
        """Parse whatever the port has buffered; the newest data frame in it, if any."""
        try:
            waiting = getattr(self.port, "in_waiting", 0)
            data = self.port.read(waiting) if isinstance(waiting, int) and waiting > 0 else b""
        except OSError as exc:
            raise BusError.from_os_error(f"PMS5003 on {self._name}: read", exc) from exc
        frames = [item for item in self.reader.feed(data) if isinstance(item, Frame)]
        return frames[-1] if frames else None

    def _wait_for_frame(self, deadline: float, bad_before: int, garbage_before: int) -> Frame:
        requested_at = self._clock.monotonic()
        while True:
            try:
                data = self.port.read(self.reader.bytes_needed())
            except OSError as exc:
                raise BusError.from_os_error(f"PMS5003 on {self._name}: read", exc) from exc
            frames = [item for item in self.reader.feed(data) if isinstance(item, Frame)]
            if frames:
                return frames[-1]
            now = self._clock.monotonic()
            if now >= deadline:
                raise self._no_frame(bad_before, garbage_before)
            if self.mode == "passive" and now - requested_at >= _PASSIVE_RETRY_S:
                self._write(command(CMD_READ), "request a frame")
                requested_at = now
            if not data:
                self._clock.sleep(_IDLE_POLL_S)

    def _no_frame(self, bad_before: int, garbage_before: int) -> DriverError:
        reader = self.reader
        bad = reader.checksum_errors + reader.malformed_frames - bad_before
        garbage = reader.garbage_bytes - garbage_before
        where = f"PMS5003 on {self._name}: no valid frame within {self.timeout_s:g} s"
        if bad:
            return ChecksumError(f"{where}: {bad} corrupt frame(s) rejected (noise on the line?)")
        if garbage:
            return SensorTimeoutError(
                f"{where}, but {garbage} bytes of something else arrived: wrong device or baud rate?"
            )
        hint = (
            "it was put to sleep: call wake()" if self._asleep else "check power, TX wiring and the SET pin"
        )
        return SensorTimeoutError(f"{where}; the line is silent ({hint})")

    def _write(self, data: bytes, what: str) -> None:
        try:
            self.port.write(data)
        except OSError as exc:
            raise BusError.from_os_error(f"PMS5003 on {self._name}: {what}", exc) from exc


DRIVER = DriverSpec(
    name=NAME,
    bus="serial",
    quantities=QUANTITIES,
    factory=PMS5003,
    description="Plantower PMS5003 particulate matter sensor (PM1.0/PM2.5/PM10, particle counts)",
    default_baudrate=9600,
    options=Options,
)
