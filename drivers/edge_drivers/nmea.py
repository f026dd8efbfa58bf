"""NMEA-0183 GPS/GNSS receiver on a serial line: position, altitude and time from GGA + RMC.

Written from the NMEA-0183 sentence structure as pynmea2 (Knio/pynmea2 ``nmea.py``,
``nmea_utils.py``) and the usual references (gpsd, ArcPad, logiqx quality table)
describe it: ``$`` + address + comma-separated fields + ``*hh`` (XOR of every
character between ``$`` and ``*``) + CR LF, at most 82 characters by the standard
(receivers exceed it, so we allow :data:`MAX_SENTENCE_LENGTH`).  Most modules talk
9600 8N1, not the standard's 4800.

Only GGA (fix quality, position, altitude) and RMC (validity, speed, course, date)
are decoded, whatever the talker (GP, GN, GL, GA, GB, BD …): other sentences are
recognised and ignored.  A receiver without a fix sends empty fields, which is
normal: validity comes from GGA quality 1–5 and RMC status ``A``, never from a
non-zero latitude.  Some send a placeholder position instead (MediaTek
``8960.000000,N``, SiRF ``36000.0000``): without a fix the position fields are not
read at all.  Qualities 6–8 (dead reckoning, manual input, simulator; NMEA 2.3+) and
the matching RMC modes ``E``/``M``/``S`` are reported as ``fix_quality`` but never as a
position fix, and an NMEA 4.1 RMC's navigational status ``V`` makes it invalid.

What counts against a receiver is a bad checksum or a standard sentence that does not
parse.  Vendors talk in their own sentences (``$PUBX,03`` of 378 bytes, ``$SNRSTAT``,
``$GYOACC``, ``$LOG108``) and plain text lines (boot banners with spaces): those are
counted as ``ignored``, not as rejects.

Pure code does the parsing: :func:`parse_sentence` for one line and
:class:`NMEAReader`, which is fed arbitrary bytes and returns the sentences in them.
:class:`NMEAGPS` adds the port and the timeouts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import reduce
from operator import xor

from edge_drivers.api import DriverOptions, DriverSpec, Quantity, SelfTestResult, SerialLike, is_finite_number
from edge_drivers.clock import SYSTEM_CLOCK, Clock
from edge_drivers.errors import (
    BusError,
    ChecksumError,
    DriverError,
    MalformedDataError,
    OptionError,
    SensorTimeoutError,
)

NAME = "nmea"
MAX_SENTENCE_LENGTH = 1024
"""Longest line accepted (the standard says 82 with CR LF; real receivers go beyond, and
proprietary ones far beyond: a u-blox ``$PUBX,03`` lists every satellite in 378 bytes)."""
KNOT_MPS = 1852.0 / 3600.0
MAX_ERROR_RATE = 0.1
"""Self-test limit on the share of lines that failed the checksum or did not parse."""
_IDLE_POLL_S = 0.05
"""Pause after an empty read, so a port with timeout 0 does not spin."""

QUANTITIES: tuple[Quantity, ...] = (
    Quantity("latitude_deg", "°", "WGS84 latitude, north positive (only with a fix)"),
    Quantity("longitude_deg", "°", "WGS84 longitude, east positive (only with a fix)"),
    Quantity("altitude_m", "m", "altitude above mean sea level (only with a fix)"),
    Quantity(
        "fix_quality",
        "",
        "GGA fix quality: 0 none, 1 GPS, 2 DGPS, 3 PPS, 4 RTK fixed, 5 RTK float; 6 estimated, "
        "7 manual, 8 simulator (6-8 give no position)",
    ),
    Quantity("satellites_count", "", "satellites used in the solution"),
    Quantity("hdop", "", "horizontal dilution of precision"),
    Quantity("speed_mps", "m/s", "speed over ground (RMC, valid fix only)"),
    Quantity("course_deg", "°", "course over ground, true north (RMC, valid fix only)"),
    Quantity("gps_time_unix_s", "s", "UTC time of the fix, seconds since 1970 (needs RMC's date)"),
)

_STANDARD_ADDRESS = re.compile(r"[A-Z][A-Z0-9][A-Z]{3}")
"""Talker (2) + sentence type (3): ``GPGGA``, ``GNRMC``, ``BDGSV``."""
_VENDOR_ADDRESS = re.compile(r"[A-Z0-9][A-Z0-9_ .-]{1,31}")
"""What vendors put after ``$`` (``PUBX``, ``PMTK001``, ``SNRSTAT``, ``GYOACC``, ``LOG108``)."""
POSITION_FIX_QUALITIES = frozenset(range(1, 6))
"""GGA qualities with a measured position: 1 GPS, 2 DGPS, 3 PPS, 4 RTK, 5 float RTK (not
6 dead reckoning, 7 manual, 8 simulator; pynmea2 ``GGA.is_valid`` agrees)."""
_HEX2 = re.compile(rb"[0-9A-Fa-f]{2}")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_COUNT = re.compile(r"[0-9]{1,3}")
_TIME = re.compile(r"([0-9]{2})([0-9]{2})([0-9]{2}(?:\.[0-9]*)?)")
_DATE = re.compile(r"([0-9]{2})([0-9]{2})([0-9]{2})")
# pynmea2's dm_to_sd: degrees are all digits before the last two integer digits, so
# 2- and 3-digit degrees and any number of decimals work.  (ASCII digits only.)
_DEGREES_MINUTES = re.compile(r"([0-9]+)([0-9]{2}(?:\.[0-9]*)?)")
_VALID_RMC_MODES = frozenset("ADFPR")
"""NMEA 2.3+ mode indicators of a measured fix: autonomous, differential, float RTK,
precise, RTK (not N no fix, E estimated, M manual, S simulator)."""


# -- pure sentence code -------------------------------------------------------------------


@dataclass(frozen=True)
class GGA:
    """Global positioning system fix data.  Empty fields are ``None``."""

    time_s: float | None
    """UTC time of day in seconds (may reach 86400 during a leap second)."""
    latitude_deg: float | None
    longitude_deg: float | None
    fix_quality: int
    satellites_count: int | None
    hdop: float | None
    altitude_m: float | None
    """Above mean sea level (the geoid)."""
    geoid_separation_m: float | None
    dgps_age_s: float | None
    dgps_station: str | None

    @property
    def has_fix(self) -> bool:
        """A measured position (quality 1–5), not dead reckoning, manual or a simulator."""
        return self.fix_quality in POSITION_FIX_QUALITIES


@dataclass(frozen=True)
class RMC:
    """Recommended minimum specific GNSS data."""

    time_s: float | None
    status: str
    """``A`` valid, ``V`` warning (no usable fix)."""
    latitude_deg: float | None
    longitude_deg: float | None
    speed_knots: float | None
    course_deg: float | None
    date: date | None
    magnetic_variation_deg: float | None
    """East positive."""
    mode: str | None
    """NMEA 2.3+ mode indicator (A autonomous, D differential, E estimated, N no fix …)."""
    navigational_status: str | None = None
    """NMEA 4.1: S safe, C caution, U unsafe, V not valid."""

    @property
    def valid(self) -> bool:
        return (
            self.status == "A"
            and (self.mode is None or self.mode in _VALID_RMC_MODES)
            and self.navigational_status != "V"
        )

    @property
    def datetime_utc(self) -> datetime | None:
        if self.date is None or self.time_s is None:
            return None
        # Through a timedelta, so a leap second (hhmm60) rolls over instead of failing.
        return datetime(self.date.year, self.date.month, self.date.day, tzinfo=UTC) + timedelta(
            seconds=self.time_s
        )


@dataclass(frozen=True)
class Sentence:
    """One checked sentence.  ``data`` holds the decoded GGA or RMC, else ``None``."""

    address: str
    """Talker + type (``GPGGA``) or ``P`` + maker + type for proprietary ones (``PUBX``)."""
    fields: tuple[str, ...]
    has_checksum: bool
    data: GGA | RMC | None = None

    @property
    def proprietary(self) -> bool:
        """``P`` + maker, or any other vendor address that is not talker + type."""
        return self.address.startswith("P") or not _STANDARD_ADDRESS.fullmatch(self.address)

    @property
    def talker(self) -> str:
        return "P" if self.proprietary else self.address[:2]

    @property
    def sentence_type(self) -> str:
        return self.address[1:] if self.proprietary else self.address[2:]


def checksum(body: bytes) -> int:
    """XOR of every byte of ``body`` (the characters between ``$`` and ``*``)."""
    return reduce(xor, body, 0)


def build_sentence(body: str) -> bytes:
    """``$`` + body + ``*hh`` + CR LF, as a receiver sends it (used by the simulator and tests)."""
    raw = body.encode("ascii")
    return b"$" + raw + b"*%02X\r\n" % checksum(raw)


def parse_sentence(line: bytes | str, *, require_checksum: bool = True) -> Sentence:
    """Check one line and decode it if it is a GGA or RMC.

    Surrounding whitespace (the CR LF) is ignored and either hex case is accepted.
    Raises :class:`ChecksumError` for a wrong checksum, or a missing one when
    ``require_checksum``; :class:`MalformedDataError` for everything else that is not
    a sentence (non-ASCII, too long, no ``$``, bad address, unparsable GGA/RMC field).
    """
    if isinstance(line, str):
        try:
            line = line.encode("ascii")
        except UnicodeEncodeError as exc:
            raise MalformedDataError(f"NMEA line has a non-ASCII character at {exc.start}") from exc
    if len(line) > MAX_SENTENCE_LENGTH + 2:
        raise MalformedDataError(f"NMEA line of {len(line)} bytes is longer than {MAX_SENTENCE_LENGTH}")
    text = line.strip()
    if not text:
        raise MalformedDataError("empty NMEA line")
    bad = next((i for i, b in enumerate(text) if not 0x20 <= b <= 0x7E), None)
    if bad is not None:
        raise MalformedDataError(f"NMEA line has byte 0x{text[bad]:02X} at {bad}: not printable ASCII")
    if text[:1] != b"$":
        raise MalformedDataError(f"NMEA sentence must start with '$': {_show(text)}")
    star = text.find(b"*")
    if star >= 0:
        body, given = text[1:star], text[star + 1 :]
        if not _HEX2.fullmatch(given):
            raise MalformedDataError(f"NMEA checksum must be '*' and two hex digits: {_show(text)}")
        if int(given, 16) != checksum(body):
            raise ChecksumError(
                f"NMEA checksum *{given.decode()} != *{checksum(body):02X} (XOR of the characters "
                f"between '$' and '*'): {_show(text)}"
            )
    elif require_checksum:
        raise ChecksumError(f"NMEA sentence without checksum: {_show(text)}")
    else:
        body = text[1:]
    if b"$" in body:
        raise MalformedDataError(f"NMEA sentence contains a second '$': {_show(text)}")
    address, *fields = body.decode("ascii").split(",")
    if not (_STANDARD_ADDRESS.fullmatch(address) or _VENDOR_ADDRESS.fullmatch(address)):
        raise MalformedDataError(f"NMEA address {address!r} is neither talker+type nor a vendor's")
    sentence = Sentence(address, tuple(fields), has_checksum=star >= 0)
    if sentence.proprietary:
        return sentence
    if sentence.sentence_type == "GGA":
        return Sentence(address, sentence.fields, sentence.has_checksum, _decode_gga(sentence.fields))
    if sentence.sentence_type == "RMC":
        return Sentence(address, sentence.fields, sentence.has_checksum, _decode_rmc(sentence.fields))
    return sentence


def degrees(value: str, hemisphere: str, *, positive: str, negative: str, limit: float) -> float | None:
    """``ddmm.mmmm`` / ``dddmm.mmmm`` + hemisphere -> signed degrees; ``None`` if both are empty."""
    if not value and not hemisphere:
        return None
    match = _DEGREES_MINUTES.fullmatch(value)
    if match is None:
        raise MalformedDataError(f"NMEA coordinate {value!r} is not [d]ddmm.mmmm")
    whole, minutes = int(match.group(1)), float(match.group(2))
    result = whole + minutes / 60.0
    if minutes >= 60.0 or result > limit:
        raise MalformedDataError(f"NMEA coordinate {value!r} is out of range")
    if hemisphere == positive:
        return result
    if hemisphere == negative:
        return -result
    raise MalformedDataError(
        f"NMEA coordinate {value!r} has hemisphere {hemisphere!r}, not {positive}/{negative}"
    )


def _show(text: bytes) -> str:
    shown = text.decode("ascii", "replace")
    return shown if len(shown) <= 90 else shown[:87] + "..."


def _padded(fields: tuple[str, ...], count: int) -> list[str]:
    # Receivers drop trailing empty fields; pad so every index exists.
    return list(fields) + [""] * (count - len(fields))


def _number(value: str, what: str) -> float | None:
    if not value:
        return None
    if not _NUMBER.fullmatch(value):
        raise MalformedDataError(f"NMEA {what} {value!r} is not a number")
    return float(value)


def _count(value: str, what: str) -> int | None:
    if not value:
        return None
    if not _COUNT.fullmatch(value):
        raise MalformedDataError(f"NMEA {what} {value!r} is not a small whole number")
    return int(value)


def _time_of_day(value: str) -> float | None:
    if not value:
        return None
    match = _TIME.fullmatch(value)
    if match is None:
        raise MalformedDataError(f"NMEA time {value!r} is not hhmmss.ss")
    hours, minutes, seconds = int(match.group(1)), int(match.group(2)), float(match.group(3))
    if hours > 23 or minutes > 59 or seconds >= 61.0:
        raise MalformedDataError(f"NMEA time {value!r} is out of range")
    return hours * 3600 + minutes * 60 + seconds


def _date(value: str) -> date | None:
    if not value:
        return None
    match = _DATE.fullmatch(value)
    if match is None:
        raise MalformedDataError(f"NMEA date {value!r} is not ddmmyy")
    day, month, year = (int(g) for g in match.groups())
    try:
        # Two-digit years: GPS time starts in 1980.
        return date(year + (1900 if year >= 80 else 2000), month, day)
    except ValueError as exc:
        raise MalformedDataError(f"NMEA date {value!r} is not a date: {exc}") from exc


def _decode_gga(fields: tuple[str, ...]) -> GGA:
    f = _padded(fields, 14)
    quality = _count(f[5], "GGA fix quality") or 0
    # Without a fix the position fields are whatever the receiver puts there: empty, zeros,
    # or a placeholder that is no coordinate (MediaTek 8960.000000,N; SiRF 36000.0000).
    located = quality != 0
    return GGA(
        time_s=_time_of_day(f[0]),
        latitude_deg=degrees(f[1], f[2], positive="N", negative="S", limit=90.0) if located else None,
        longitude_deg=degrees(f[3], f[4], positive="E", negative="W", limit=180.0) if located else None,
        fix_quality=quality,
        satellites_count=_count(f[6], "GGA satellite count"),
        hdop=_number(f[7], "GGA HDOP"),
        altitude_m=_number(f[8], "GGA altitude"),
        geoid_separation_m=_number(f[10], "GGA geoid separation"),
        dgps_age_s=_number(f[12], "GGA DGPS age"),
        dgps_station=f[13] or None,
    )


def _decode_rmc(fields: tuple[str, ...]) -> RMC:
    f = _padded(fields, 13)
    variation = _number(f[9], "RMC magnetic variation")
    if variation is not None and f[10] == "W":
        variation = -variation
    located = f[1] == "A"  # status V: the position fields may hold a placeholder (see GGA)
    return RMC(
        time_s=_time_of_day(f[0]),
        status=f[1],
        latitude_deg=degrees(f[2], f[3], positive="N", negative="S", limit=90.0) if located else None,
        longitude_deg=degrees(f[4], f[5], positive="E", negative="W", limit=180.0) if located else None,
        speed_knots=_number(f[6], "RMC speed"),
        course_deg=_number(f[7], "RMC course"),
        date=_date(f[8]),
        magnetic_variation_deg=variation,
        mode=f[11] or None,
        navigational_status=f[12] or None,
    )


class NMEAReader:
    """Splits a byte stream into lines and returns the valid sentences in it.

    ``feed`` never raises for bad input: bad lines are counted and dropped.  The first
    line is usually the tail of a sentence cut off when the port was opened, so it is
    dropped without being counted.  Noise in front of a sentence on the same line is
    skipped by starting at the line's last ``$`` (a sentence cannot contain one).
    """

    def __init__(self, *, require_checksum: bool = True) -> None:
        self.require_checksum = require_checksum
        self.sentences_ok = 0
        self.checksum_errors = 0
        self.malformed = 0
        """Lines that were not printable text, or standard sentences that did not parse."""
        self.ignored = 0
        """Vendor text: printable lines that are not ``$`` sentences (boot banners and the like)."""
        self.garbage_bytes = 0
        """Bytes skipped in front of a ``$`` or dropped from an overlong line."""
        self._partial = bytearray()
        self._first_line = True

    @property
    def error_rate(self) -> float:
        """Share of lines that were rejected (0 before any line)."""
        bad = self.checksum_errors + self.malformed
        total = bad + self.sentences_ok
        return bad / total if total else 0.0

    def feed(self, data: bytes) -> list[Sentence]:
        """Add ``data`` and return the valid sentences of the lines it completed."""
        self._partial += data
        found = []
        while (end := self._partial.find(b"\n")) >= 0:
            line = bytes(self._partial[: end + 1])
            del self._partial[: end + 1]
            sentence = self._line(line)
            if sentence is not None:
                found.append(sentence)
        if len(self._partial) > MAX_SENTENCE_LENGTH:
            # No newline for too long: keep at most the start of a sentence.
            start = self._partial.rfind(b"$")
            keep = (
                start
                if start >= 0 and len(self._partial) - start <= MAX_SENTENCE_LENGTH
                else len(self._partial)
            )
            self.garbage_bytes += keep
            del self._partial[:keep]
        return found

    def _line(self, line: bytes) -> Sentence | None:
        first, self._first_line = self._first_line, False
        if not line.strip():
            return None
        start = line.rfind(b"$")
        if start < 0 and _is_text(line):
            self.ignored += 0 if first else 1  # a vendor's plain text: nothing against the receiver
            return None
        if start > 0:
            self.garbage_bytes += start
            line = line[start:]
        try:
            sentence = parse_sentence(line, require_checksum=self.require_checksum)
        except ChecksumError:
            self.checksum_errors += 0 if first else 1
            return None
        except MalformedDataError:
            self.malformed += 0 if first else 1
            return None
        self.sentences_ok += 1
        return sentence


def _is_text(line: bytes) -> bool:
    text = line.strip()
    return bool(text) and all(0x20 <= b <= 0x7E or b == 0x09 for b in text)


# -- the driver ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Fix:
    """The details of the last position fix, for callers that want more than ``read()``."""

    latitude_deg: float
    longitude_deg: float
    altitude_m: float | None
    fix_quality: int
    satellites_count: int | None
    hdop: float | None
    geoid_separation_m: float | None
    speed_mps: float | None
    course_deg: float | None
    time_utc: datetime | None
    """From RMC's date and time; ``None`` without a valid RMC of the same epoch."""
    received_at_s: float
    """The driver clock's monotonic time when the fix was read."""


_Fix = GGA | RMC


@dataclass
class _Epoch:
    """The GGA and RMC sentences of one ``read()``, paired by their UTC time.

    The target is the newest GGA already waiting when the read starts (so a backlog does not
    make us report the past), else the first that arrives.  Its RMC is the one with the same
    time of day, whether it came before the GGA (u-blox sends RMC first) or after (SiRF,
    MediaTek).  A GGA or RMC of another time after the target belongs to the next epoch:
    the epoch is over, and those sentences are kept for the next read instead of lost.
    """

    seen: list[_Fix] = field(default_factory=list)
    target: int | None = None
    types: set[str] = field(default_factory=set)

    def add(self, items: list[_Fix] | list[Sentence], *, backlog: bool) -> None:
        for item in items:
            data = item.data if isinstance(item, Sentence) else item
            if isinstance(item, Sentence):
                self.types.add(item.sentence_type)
            if data is None:
                continue
            self.seen.append(data)
            if isinstance(data, GGA) and (backlog or self.target is None):
                self.target = len(self.seen) - 1

    @property
    def gga(self) -> GGA | None:
        found = None if self.target is None else self.seen[self.target]
        return found if isinstance(found, GGA) else None

    @property
    def rmc(self) -> RMC | None:
        """The RMC of the GGA's epoch (same time of day), if it has been seen."""
        gga = self.gga
        if gga is None:
            return None
        return next((x for x in reversed(self.seen) if isinstance(x, RMC) and _same_time(x, gga)), None)

    @property
    def later(self) -> list[_Fix]:
        """What arrived after the GGA but belongs to another epoch."""
        gga = self.gga
        if gga is None or self.target is None:
            return []
        return [x for x in self.seen[self.target + 1 :] if not _same_time(x, gga)]

    @property
    def complete(self) -> bool:
        return self.gga is not None and (self.rmc is not None or bool(self.later))


def _same_time(a: _Fix, b: _Fix) -> bool:
    if a.time_s is None or b.time_s is None:
        return a.time_s is None and b.time_s is None
    return abs(a.time_s - b.time_s) < 0.001


MAX_TIMEOUT_S = 3600.0
"""The longest timeout_s: a receiver sends sentences every second even without a fix, so a
wait beyond an hour is a typo, and a huge one would leave a sensor's thread waiting forever."""


@dataclass(frozen=True, kw_only=True)
class Options(DriverOptions):
    """Options of :class:`NMEAGPS` (``[sensors.options]`` in the config)."""

    driver_name = NAME

    timeout_s: float = field(
        default=3.0, metadata={"description": "how long read() waits for a valid GGA sentence"}
    )
    require_checksum: bool = field(
        default=True,
        metadata={
            "description": "reject sentences without '*hh' (line noise easily produces plausible fields)"
        },
    )

    def __post_init__(self) -> None:
        seconds = self.timeout_s
        # Bounded above: a huge int passes ``< math.inf`` and then overflows the deadline.
        if not (is_finite_number(seconds) and 0 < seconds <= MAX_TIMEOUT_S):
            raise OptionError(
                NAME,
                "timeout_s",
                f"must be a positive number of seconds, at most {MAX_TIMEOUT_S:g}",
                value=seconds,
            )
        if not isinstance(self.require_checksum, bool):
            raise OptionError(NAME, "require_checksum", "must be true or false", value=self.require_checksum)


class NMEAGPS:
    """A GPS/GNSS receiver sending NMEA-0183 on a pyserial-compatible ``port`` (with a read timeout)."""

    def __init__(
        self,
        port: SerialLike,
        *,
        clock: Clock = SYSTEM_CLOCK,
        timeout_s: float = 3.0,
        require_checksum: bool = True,
    ) -> None:
        # The rules live in Options, so a script and the agent's config check see the same errors.
        Options(timeout_s=timeout_s, require_checksum=require_checksum)
        self.port = port
        self.timeout_s = timeout_s
        self.reader = NMEAReader(require_checksum=require_checksum)
        self.last_fix: Fix | None = None
        self._carried: list[_Fix] = []
        """Sentences of the next epoch that the last read took in: its start, kept."""
        self._clock = clock
        self._name = str(getattr(port, "name", None) or getattr(port, "port", None) or "serial port")

    def read(self) -> dict[str, float]:
        """The current epoch: GGA (fix quality, position, altitude) and, if it comes, its RMC.

        Position, altitude, speed, course and time are left out without a fix.
        """
        reader = self.reader
        deadline = self._clock.monotonic() + self.timeout_s
        before = (reader.sentences_ok, reader.checksum_errors, reader.malformed)
        epoch = _Epoch()
        # What is already here first, so a backlog does not make us report the past.
        carried, self._carried = self._carried, []
        epoch.add(carried, backlog=True)
        epoch.add(reader.feed(self._drain()), backlog=True)
        while not epoch.complete:
            if self._clock.monotonic() >= deadline:
                if epoch.gga is not None:
                    break
                raise self._no_gga(before, epoch.types)
            line = self._readline()
            if not line:
                if epoch.gga is not None:
                    break  # the burst is over and it had no RMC for this epoch
                self._clock.sleep(_IDLE_POLL_S)
                continue
            epoch.add(reader.feed(line), backlog=False)
        gga = epoch.gga
        assert gga is not None
        self._carried = epoch.later
        return self._measurements(gga, epoch.rmc)

    def self_test(self) -> SelfTestResult:
        """Reads one epoch, then judges the share of lines rejected so far."""
        problem = ""
        values: dict[str, float] = {}
        try:
            values = self.read()
        except DriverError as exc:
            problem = str(exc)
        reader = self.reader
        measurements = {
            "sentences_ok": float(reader.sentences_ok),
            "checksum_errors": float(reader.checksum_errors),
            "malformed": float(reader.malformed),
            "error_rate": reader.error_rate,
        }
        if "fix_quality" in values:
            measurements["fix_quality"] = values["fix_quality"]
        problems = [problem] if problem else []
        if reader.error_rate > MAX_ERROR_RATE:
            problems.append(
                f"{reader.error_rate:.1%} of the lines were rejected (limit {MAX_ERROR_RATE:.0%}): "
                "check the baud rate, wiring and ground"
            )
        if problems:
            return SelfTestResult(False, "; ".join(problems), measurements)
        fix = (
            "a fix"
            if values.get("fix_quality", 0.0) > 0
            else "no fix yet (normal indoors or at a cold start)"
        )
        detail = (
            f"{reader.sentences_ok} sentences, {reader.checksum_errors + reader.malformed} rejected "
            f"({reader.error_rate:.1%}); {fix}"
        )
        return SelfTestResult(True, detail, measurements)

    # -- internals -------------------------------------------------------------------------

    def _measurements(self, gga: GGA, rmc: RMC | None) -> dict[str, float]:
        out = {"fix_quality": float(gga.fix_quality)}
        if gga.satellites_count is not None:
            out["satellites_count"] = float(gga.satellites_count)
        if gga.hdop is not None:
            out["hdop"] = gga.hdop
        if not gga.has_fix or gga.latitude_deg is None or gga.longitude_deg is None:
            return out
        out["latitude_deg"] = gga.latitude_deg
        out["longitude_deg"] = gga.longitude_deg
        if gga.altitude_m is not None:
            out["altitude_m"] = gga.altitude_m
        valid_rmc = rmc if rmc is not None and rmc.valid else None
        speed = course = when = None
        if valid_rmc is not None:
            speed = None if valid_rmc.speed_knots is None else valid_rmc.speed_knots * KNOT_MPS
            course = valid_rmc.course_deg
            when = valid_rmc.datetime_utc
        if speed is not None:
            out["speed_mps"] = speed
        if course is not None:
            out["course_deg"] = course
        if when is not None:
            out["gps_time_unix_s"] = when.timestamp()
        self.last_fix = Fix(
            latitude_deg=gga.latitude_deg,
            longitude_deg=gga.longitude_deg,
            altitude_m=gga.altitude_m,
            fix_quality=gga.fix_quality,
            satellites_count=gga.satellites_count,
            hdop=gga.hdop,
            geoid_separation_m=gga.geoid_separation_m,
            speed_mps=speed,
            course_deg=course,
            time_utc=when,
            received_at_s=self._clock.monotonic(),
        )
        return out

    def _no_gga(self, before: tuple[int, int, int], types: set[str]) -> DriverError:
        reader = self.reader
        ok = reader.sentences_ok - before[0]
        bad_checksum = reader.checksum_errors - before[1]
        malformed = reader.malformed - before[2]
        where = f"NMEA receiver on {self._name}: no GGA sentence within {self.timeout_s:g} s"
        if bad_checksum:
            return ChecksumError(
                f"{where}: {bad_checksum} sentence(s) failed the checksum (noise on the line?)"
            )
        if ok:
            seen = ", ".join(sorted(types))
            return SensorTimeoutError(f"{where}, only {seen}: enable GGA output on the receiver")
        if malformed:
            return SensorTimeoutError(f"{where}: {malformed} unreadable line(s): wrong baud rate or device?")
        return SensorTimeoutError(f"{where}; the line is silent: check power and TX wiring")

    def _drain(self) -> bytes:
        try:
            waiting = getattr(self.port, "in_waiting", 0)
            return self.port.read(waiting) if isinstance(waiting, int) and waiting > 0 else b""
        except OSError as exc:
            raise BusError.from_os_error(f"NMEA receiver on {self._name}: read", exc) from exc

    def _readline(self) -> bytes:
        try:
            return self.port.readline()
        except OSError as exc:
            raise BusError.from_os_error(f"NMEA receiver on {self._name}: read", exc) from exc


DRIVER = DriverSpec(
    name=NAME,
    bus="serial",
    quantities=QUANTITIES,
    factory=NMEAGPS,
    description="GPS/GNSS receiver speaking NMEA-0183 (GGA + RMC: position, altitude, fix, time)",
    default_baudrate=9600,
    options=Options,
)
