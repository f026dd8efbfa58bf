"""NMEA-0183: sentence arithmetic, the line reader, the driver on fakes and on the simulator."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import inspect
from datetime import UTC, date, datetime

import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_drivers.clock import ManualClock
from edge_drivers.errors import (
    BusError,
    ChecksumError,
    DataIntegrityError,
    DriverError,
    MalformedDataError,
    SensorTimeoutError,
)
from edge_drivers.nmea import (
    DRIVER,
    GGA,
    MAX_SENTENCE_LENGTH,
    NMEAGPS,
    RMC,
    NMEAReader,
    Options,
    build_sentence,
    checksum,
    degrees,
    parse_sentence,
)
from edge_drivers.sim.nmea import SimulatedNMEA, format_latitude, format_longitude
from edge_drivers.sim.serial_port import SimulatedSerial

# -- worked examples ------------------------------------------------------------------------
# Each checksum is recomputed below (XOR of the characters between '$' and '*').

# The classic pair from the NMEA references (gpsinformation.org, ArcPad, the reference sheet):
# 12:35:19 UTC, 48°07.038' N 11°31.000' E, fix 1, 8 satellites, HDOP 0.9, 545.4 m MSL,
# geoid 46.9 m; RMC: 22.4 kn, course 84.4°, 23 March 1994, variation 3.1° W.
CLASSIC_GGA = "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47"
CLASSIC_RMC = "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A"
# Southern hemisphere: the example in pynmea2's NMEASentence docstring.
SOUTH_GGA = "$GPGGA,184353.07,1929.045,S,02410.506,E,1,04,2.6,100.00,M,-33.9,M,,0000*6D"
# Western hemisphere: the RMC example of gpsinformation.org (Vancouver, 19 Nov 1994).
WEST_RMC = "$GPRMC,225446,A,4916.45,N,12311.12,W,000.5,054.7,191194,020.3,E*68"
# What a u-blox receiver sends before its first fix.
NO_FIX_GGA = "$GPGGA,,,,,,0,00,99.99,,,,,,*48"
NO_FIX_RMC = "$GPRMC,,V,,,,,,,,,,N*53"


@pytest.mark.parametrize("line", [CLASSIC_GGA, CLASSIC_RMC, SOUTH_GGA, WEST_RMC, NO_FIX_GGA, NO_FIX_RMC])
def test_worked_example_checksums(line: str) -> None:
    body, given_checksum = line[1:].split("*")
    assert checksum(body.encode()) == int(given_checksum, 16)
    assert build_sentence(body) == (line + "\r\n").encode()


def test_classic_gga() -> None:
    sentence = parse_sentence(CLASSIC_GGA + "\r\n")
    assert (sentence.talker, sentence.sentence_type) == ("GP", "GGA")
    gga = sentence.data
    assert isinstance(gga, GGA) and gga.has_fix
    assert gga.time_s == 12 * 3600 + 35 * 60 + 19
    assert gga.latitude_deg == pytest.approx(48.1173)
    assert gga.longitude_deg == pytest.approx(11.516667, abs=1e-6)
    assert (gga.fix_quality, gga.satellites_count, gga.hdop) == (1, 8, 0.9)
    assert (gga.altitude_m, gga.geoid_separation_m) == (545.4, 46.9)
    assert gga.dgps_age_s is None and gga.dgps_station is None


def test_classic_rmc() -> None:
    rmc = parse_sentence(CLASSIC_RMC).data
    assert isinstance(rmc, RMC) and rmc.valid
    assert (rmc.speed_knots, rmc.course_deg) == (22.4, 84.4)
    assert rmc.date == date(1994, 3, 23)
    assert rmc.magnetic_variation_deg == -3.1
    assert rmc.mode is None
    assert rmc.datetime_utc == datetime(1994, 3, 23, 12, 35, 19, tzinfo=UTC)


def test_southern_gga() -> None:
    gga = parse_sentence(SOUTH_GGA).data
    assert isinstance(gga, GGA)
    assert gga.latitude_deg == pytest.approx(-(19 + 29.045 / 60))
    assert gga.longitude_deg == pytest.approx(24 + 10.506 / 60)
    assert gga.time_s == pytest.approx(18 * 3600 + 43 * 60 + 53.07)
    assert (gga.altitude_m, gga.geoid_separation_m, gga.dgps_station) == (100.0, -33.9, "0000")


def test_western_rmc() -> None:
    rmc = parse_sentence(WEST_RMC).data
    assert isinstance(rmc, RMC)
    assert rmc.latitude_deg == pytest.approx(49.274167, abs=1e-6)
    assert rmc.longitude_deg == pytest.approx(-123.185333, abs=1e-6)
    assert rmc.magnetic_variation_deg == 20.3
    assert rmc.datetime_utc == datetime(1994, 11, 19, 22, 54, 46, tzinfo=UTC)


def test_no_fix_sentences() -> None:
    gga = parse_sentence(NO_FIX_GGA).data
    assert isinstance(gga, GGA) and not gga.has_fix
    assert gga.latitude_deg is None and gga.time_s is None and gga.hdop == 99.99
    rmc = parse_sentence(NO_FIX_RMC).data
    assert isinstance(rmc, RMC) and not rmc.valid and rmc.mode == "N" and rmc.datetime_utc is None


# -- pure functions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "hemisphere", "expected"),
    [
        ("4807.038", "N", 48.1173),
        ("01131.000", "E", 11.516666666),
        ("12319.943281", "W", -(123 + 19.943281 / 60)),  # pynmea2's dm_to_sd docstring
        ("807.5", "S", -8.125),  # a receiver that drops the leading zero
        ("4807", "N", 48.116666666),
    ],
)
def test_degrees_and_minutes(value: str, hemisphere: str, expected: float) -> None:
    result = degrees(
        value,
        hemisphere,
        positive="N" if hemisphere in "NS" else "E",
        negative="S" if hemisphere in "NS" else "W",
        limit=180,
    )
    assert result == pytest.approx(expected)


@pytest.mark.parametrize(
    ("line", "error", "text"),
    [
        (CLASSIC_GGA[:-2] + "48", ChecksumError, r"\*48 != \*47"),
        (CLASSIC_GGA[:-3], ChecksumError, "without checksum"),
        (CLASSIC_GGA[:-2] + "4", MalformedDataError, "two hex digits"),
        (CLASSIC_GGA[1:], MalformedDataError, "must start with '\\$'"),
        ("$GPGGA,1235é9" + CLASSIC_GGA[13:], MalformedDataError, "non-ASCII"),
        (b"$GPGGA,\xff\xfe*00", MalformedDataError, "0xFF at 7"),
        ("$" + "A" * MAX_SENTENCE_LENGTH + "*00", MalformedDataError, "longer than"),
        ("", MalformedDataError, "empty"),
        ("\r\n", MalformedDataError, "empty"),
        ("$gpgga,", ChecksumError, "without"),
        (build_sentence("gpgga,1").decode(), MalformedDataError, "address 'gpgga'"),
        (build_sentence("GPGGA,12a519,,,,,0").decode(), MalformedDataError, "time '12a519'"),
        (build_sentence("GPGGA,126019,,,,,0").decode(), MalformedDataError, "out of range"),
        (build_sentence("GPGGA,123519,4807.038,X,01131.000,E,1").decode(), MalformedDataError, "hemisphere"),
        (
            build_sentence("GPGGA,123519,9107.038,N,01131.000,E,1").decode(),
            MalformedDataError,
            "out of range",
        ),
        (build_sentence("GPGGA,123519,4807.038,N,01131.000,E,1,08,nan").decode(), MalformedDataError, "HDOP"),
        (build_sentence("GPRMC,123519,A,,,,,,,310299").decode(), MalformedDataError, "not a date"),
        (build_sentence("GPGGA,1$2,").decode(), MalformedDataError, "second '\\$'"),
    ],
)
def test_parse_sentence_rejects(line: str | bytes, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        parse_sentence(line)


def test_lower_case_checksum_and_missing_checksum_option() -> None:
    assert isinstance(parse_sentence(CLASSIC_RMC.replace("*6A", "*6a")).data, RMC)
    lenient = parse_sentence(CLASSIC_GGA[:-3], require_checksum=False)
    assert isinstance(lenient.data, GGA) and not lenient.has_checksum


@pytest.mark.parametrize("talker", ["GP", "GN", "GL", "GA", "GB", "BD", "GQ"])
def test_every_talker_decodes(talker: str) -> None:
    body = CLASSIC_GGA[1:-3].replace("GPGGA", f"{talker}GGA")
    gga = parse_sentence(build_sentence(body)).data
    assert isinstance(gga, GGA) and gga.altitude_m == 545.4


@pytest.mark.parametrize(
    ("body", "sentence_type"),
    [
        ("GPGSV,3,1,11,03,03,111,00,04,15,270,00,06,01,010,00,13,06,292,00", "GSV"),
        ("GNGSA,A,3,05,13,15,18,,,,,,,,,1.68,0.95,1.38", "GSA"),
        ("GPVTG,054.7,T,034.4,M,005.5,N,010.2,K", "VTG"),
        ("PUBX,00,081350.00,4717.113210,N,00833.915187,E,546.589,G3,2.1,2.0", "UBX"),
        ("PGRME,15.0,M,45.0,M,25.0,M", "GRME"),
    ],
)
def test_other_sentences_are_recognised_and_ignored(body: str, sentence_type: str) -> None:
    sentence = parse_sentence(build_sentence(body))
    assert sentence.data is None and sentence.sentence_type == sentence_type


def test_trailing_empty_fields_may_be_missing() -> None:
    gga = parse_sentence(build_sentence("GPGGA,123519,4807.038,N,01131.000,E,1,08")).data
    assert isinstance(gga, GGA) and gga.has_fix and gga.altitude_m is None


def test_reader_skips_the_first_partial_line_without_counting_it() -> None:
    reader = NMEAReader()
    found = reader.feed(b",M,46.9,M,,*47\r\n" + CLASSIC_GGA.encode() + b"\r\n")
    assert [s.sentence_type for s in found] == ["GGA"]
    assert (reader.malformed, reader.checksum_errors, reader.sentences_ok) == (0, 0, 1)
    reader.feed(b"garbage\r\n")  # printable text: a vendor's, ignored
    assert (reader.malformed, reader.ignored) == (0, 1)
    reader.feed(b"\x8f\xfe\x13\x80\r\n")  # what a wrong baud rate looks like
    assert reader.malformed == 1


def test_reader_joins_lines_split_across_reads_and_skips_noise() -> None:
    reader = NMEAReader()
    stream = b"\r\n\x00\xff\xfe" + CLASSIC_GGA.encode() + b"\r\n" + CLASSIC_RMC.encode() + b"\r\n"
    found = []
    for i in range(0, len(stream), 7):
        found += reader.feed(stream[i : i + 7])
    assert [s.sentence_type for s in found] == ["GGA", "RMC"]
    assert reader.garbage_bytes == 3 and reader.error_rate == 0.0


def test_reader_bounds_a_line_without_newline() -> None:
    reader = NMEAReader()
    reader.feed(b"x" * 1000)
    reader.feed(b"y" * 1000 + CLASSIC_GGA.encode())
    assert [s.sentence_type for s in reader.feed(b"\r\n")] == ["GGA"]
    assert reader.garbage_bytes == 2000


# -- fuzzing ----------------------------------------------------------------------------------

valid_lines = st.sampled_from([CLASSIC_GGA, CLASSIC_RMC, SOUTH_GGA, WEST_RMC, NO_FIX_GGA])
# Noise rich in the characters that matter to the parser.
noise = st.lists(
    st.one_of(st.binary(max_size=10), st.sampled_from([b"$", b"*", b",", b"\r", b"$GPGGA,", b"*47", b"$GP"])),
    max_size=30,
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=120), st.text(max_size=120), noise))
def test_parse_sentence_raises_only_integrity_errors(line: bytes | str) -> None:
    with contextlib.suppress(DataIntegrityError):
        parse_sentence(line)


@settings(max_examples=200, deadline=None)
@given(valid_lines, st.integers(0, 80), st.characters(codec="ascii"))
def test_a_changed_character_is_never_accepted_silently(line: str, index: int, char: str) -> None:
    index %= len(line)
    changed = line[:index] + char + line[index + 1 :]
    try:
        sentence = parse_sentence(changed)
    except DataIntegrityError:
        return
    # Only changes XOR cannot see, or that do not change the meaning, get through.
    assert (
        changed.upper() == line.upper() or char == line[index] or sentence.data == parse_sentence(line).data
    )


@settings(max_examples=200, deadline=None)
@given(st.floats(-90, 90), st.floats(-180, 180))
def test_coordinates_survive_formatting_and_parsing(latitude: float, longitude: float) -> None:
    lat, ns = format_latitude(latitude)
    lon, ew = format_longitude(longitude)
    gga = parse_sentence(
        build_sentence(f"GNGGA,120000.00,{lat},{ns},{lon},{ew},1,08,1.0,10.0,M,0.0,M,,")
    ).data
    assert isinstance(gga, GGA)
    assert gga.latitude_deg == pytest.approx(latitude, abs=1e-6)
    assert gga.longitude_deg == pytest.approx(longitude, abs=1e-6)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=60), max_size=20))
def test_reader_never_raises(chunks: list[bytes]) -> None:
    reader = NMEAReader()
    for chunk in chunks:
        reader.feed(chunk)
    assert 0.0 <= reader.error_rate <= 1.0


@settings(max_examples=300, deadline=None)
@given(
    st.lists(noise.map(lambda b: b.replace(b"\n", b"")), max_size=4),
    noise.map(lambda b: b.replace(b"\n", b"")),
    valid_lines,
    st.booleans(),
    st.lists(st.integers(1, 50), max_size=6),
)
def test_sentence_after_garbage_is_always_found(
    lines: list[bytes], tail: bytes, line: str, own_line: bool, cuts: list[int]
) -> None:
    # Garbage lines, then garbage without a newline, then (after CR LF or directly) a sentence.
    separator = b"\r\n" if own_line else b""
    stream = b"".join(g + b"\r\n" for g in lines) + tail + separator + line.encode() + b"\r\n"
    reader = NMEAReader()
    found = []
    position = 0
    for cut in cuts:
        found += reader.feed(stream[position : position + cut])
        position += cut
    found += reader.feed(stream[position:])
    assert found and found[-1] == parse_sentence(line)


class FakePort:
    """Only what every pyserial-compatible object has: read, readline, write (no in_waiting)."""

    def __init__(self, data: bytes = b"") -> None:
        self.rx = bytearray(data)
        self.fail_with: OSError | None = None

    def read(self, size: int = 1) -> bytes:
        raise AssertionError("the NMEA driver reads lines")

    def readline(self, size: int | None = -1, /) -> bytes:
        if self.fail_with:
            raise self.fail_with
        end = self.rx.find(b"\n")
        end = len(self.rx) if end < 0 else end + 1
        out = bytes(self.rx[:end])
        del self.rx[:end]
        return out

    def write(self, data: bytes, /) -> int:
        raise AssertionError("a GPS needs no commands")


@settings(max_examples=100, deadline=None)
@given(st.lists(noise, max_size=6), st.booleans())
def test_driver_line_loop_raises_only_driver_errors(lines: list[bytes], with_gga: bool) -> None:
    data = b"\r\n".join(lines) + b"\r\n" + (CLASSIC_GGA.encode() + b"\r\n" if with_gga else b"")
    sensor = NMEAGPS(FakePort(data), clock=ManualClock())
    try:
        values = sensor.read()
    except DriverError:
        assert not with_gga
        return
    assert not with_gga or values["altitude_m"] == 545.4


# -- the driver on a minimal port written here ----------------------------------------------


def lines(*sentences: str) -> bytes:
    return b"".join(s.encode() + b"\r\n" for s in sentences)


def test_driver_on_a_minimal_port_pairs_gga_and_rmc() -> None:
    port = FakePort(
        b"9.038,N,01131*47\r\n" + lines(CLASSIC_GGA, "$GPGSA,A,3,04,05,,,,,,,,,,,2.5,1.3,2.1*39", CLASSIC_RMC)
    )
    sensor = NMEAGPS(port, clock=ManualClock())
    values = sensor.read()
    assert values == {
        "fix_quality": 1.0,
        "satellites_count": 8.0,
        "hdop": 0.9,
        "latitude_deg": pytest.approx(48.1173),
        "longitude_deg": pytest.approx(11.516667, abs=1e-6),
        "altitude_m": 545.4,
        "speed_mps": pytest.approx(22.4 * 1852 / 3600),
        "course_deg": 84.4,
        "gps_time_unix_s": datetime(1994, 3, 23, 12, 35, 19, tzinfo=UTC).timestamp(),
    }
    fix = sensor.last_fix
    assert fix is not None and fix.time_utc == datetime(1994, 3, 23, 12, 35, 19, tzinfo=UTC)
    assert fix.geoid_separation_m == 46.9 and fix.speed_mps == pytest.approx(11.5235, abs=1e-4)
    assert sensor.reader.malformed == 0  # the partial first line is not an error


def test_rmc_of_another_epoch_is_not_paired() -> None:
    other_epoch = build_sentence(CLASSIC_RMC[1:-3].replace("123519", "123518")).decode().strip()
    sensor = NMEAGPS(FakePort(lines(other_epoch, CLASSIC_GGA)), clock=ManualClock())
    values = sensor.read()
    assert values["altitude_m"] == 545.4
    assert "speed_mps" not in values and "gps_time_unix_s" not in values


def test_rmc_without_valid_status_gives_no_speed_or_time() -> None:
    void = build_sentence(CLASSIC_RMC[1:-3].replace(",A,", ",V,")).decode().strip()
    values = NMEAGPS(FakePort(lines(CLASSIC_GGA, void)), clock=ManualClock()).read()
    assert "latitude_deg" in values and "speed_mps" not in values and "gps_time_unix_s" not in values


def test_no_fix_reports_quality_but_no_position() -> None:
    sensor = NMEAGPS(FakePort(lines(NO_FIX_RMC, NO_FIX_GGA)), clock=ManualClock())
    assert sensor.read() == {"fix_quality": 0.0, "satellites_count": 0.0, "hdop": 99.99}
    assert sensor.last_fix is None


def test_lenient_checksum_option() -> None:
    port = FakePort(lines("$GPGGA,junk", CLASSIC_GGA[:-3]))
    assert NMEAGPS(port, clock=ManualClock(), require_checksum=False).read()["altitude_m"] == 545.4
    strict = NMEAGPS(FakePort(lines("$GPGGA,junk", CLASSIC_GGA[:-3])), clock=ManualClock())
    with pytest.raises(ChecksumError, match="1 sentence"):
        strict.read()


@pytest.mark.parametrize(
    ("data", "error", "text"),
    [
        (b"", SensorTimeoutError, "no GGA sentence within 3 s; the line is silent"),
        (
            b"\r\n" + lines(CLASSIC_RMC, "$GPVTG,054.7,T,034.4,M,005.5,N,010.2,K*48"),
            SensorTimeoutError,
            "only RMC, VTG: enable GGA",
        ),
        (b"\r\n\x8f\x13\xfe\r\n\xf0\x0f\r\n", SensorTimeoutError, "2 unreadable line.*wrong baud rate"),
        (b"\r\n" + lines(CLASSIC_GGA[:-1] + "8"), ChecksumError, "failed the checksum"),
    ],
)
def test_no_gga_is_explained(data: bytes, error: type[Exception], text: str) -> None:
    clock = ManualClock()
    sensor = NMEAGPS(FakePort(data), clock=clock)
    with pytest.raises(error, match=text):
        sensor.read()
    assert clock.monotonic() == pytest.approx(1003.0, abs=0.1)


def test_port_error_is_a_bus_error_with_errno() -> None:
    port = FakePort()
    sensor = NMEAGPS(port, clock=ManualClock())
    port.fail_with = OSError(errno.EIO, "Input/output error")
    with pytest.raises(BusError, match="errno 5 EIO") as info:
        sensor.read()
    assert info.value.errno == errno.EIO and info.value.__cause__ is port.fail_with


@pytest.mark.parametrize(
    ("options", "name"),
    [({"timeout_s": 0.0}, "timeout_s"), ({"require_checksum": "maybe"}, "require_checksum")],
)
def test_bad_options_name_the_option(options: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        NMEAGPS(FakePort(), clock=ManualClock(), **options)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=name):
        Options(**options)


def test_options_model_mirrors_the_keyword_options() -> None:
    parameters = inspect.signature(NMEAGPS).parameters
    keyword = {n: p.default for n, p in parameters.items() if p.kind is p.KEYWORD_ONLY and n != "clock"}
    assert dataclasses.asdict(Options()) == keyword
    with pytest.raises(ValueError):
        Options(**{"baudrate": 4800})


def test_driver_spec() -> None:
    assert (DRIVER.name, DRIVER.bus, DRIVER.default_baudrate) == ("nmea", "serial", 9600)
    names = {q.name for q in DRIVER.quantities}
    assert {"latitude_deg", "longitude_deg", "altitude_m", "speed_mps", "gps_time_unix_s"} <= names
    assert DRIVER.addresses == () and DRIVER.identify is None
    assert DRIVER.options is Options


# -- against the simulator ------------------------------------------------------------------

UTC_START = 1_750_000_000.0  # 2025-06-15 15:06:40 UTC


def rig(seed: int = 3, **knobs: object) -> tuple[ManualClock, SimulatedNMEA, SimulatedSerial]:
    clock = ManualClock()
    sim = SimulatedNMEA(clock=clock, seed=seed, utc_start_s=UTC_START, **knobs)  # type: ignore[arg-type]
    return clock, sim, SimulatedSerial(sim, clock=clock, seed=seed)


def test_simulated_fix_is_plausible() -> None:
    clock, sim, port = rig(latitude_deg=-33.8568, longitude_deg=151.2153, altitude_m=20.0)
    sensor = NMEAGPS(port, clock=clock)
    for _ in range(10):
        values = sensor.read()
        assert values["fix_quality"] == 1.0 and 8 <= values["satellites_count"] <= 11
        assert 0.5 < values["hdop"] < 1.5
        assert values["latitude_deg"] == pytest.approx(-33.8568, abs=2e-4)  # ~20 m
        assert values["longitude_deg"] == pytest.approx(151.2153, abs=2e-4)
        assert values["latitude_deg"] == pytest.approx(sim.signals["latitude_deg"].true_value(), abs=2e-5)
        assert values["altitude_m"] == pytest.approx(20.0, abs=15)
        assert values["speed_mps"] < 0.5
        # The fix is of the whole second just before now.
        elapsed = clock.monotonic() - 1000.0
        assert UTC_START + elapsed - 1.5 < values["gps_time_unix_s"] <= UTC_START + elapsed
        assert values["gps_time_unix_s"] % 1 == 0


def test_values_change_over_simulated_time() -> None:
    clock, _sim, port = rig()
    sensor = NMEAGPS(port, clock=clock)
    seen = set()
    for _ in range(6):
        values = sensor.read()
        seen.add((values["latitude_deg"], values["longitude_deg"], values["altitude_m"]))
        clock.advance(300)
    assert len(seen) == 6


def test_talker_option_and_every_sentence_on_the_wire() -> None:
    _clock, _sim, port = rig(talker="GP")
    port.timeout = 0.5
    data = b"".join(port.readline() for _ in range(40))
    raw_lines = data.split(b"\r\n")[1:-1]  # the first may be cut, the last unfinished
    assert len(raw_lines) > 20
    types = set()
    for raw in raw_lines:
        assert len(raw) + 2 <= 82 and raw.startswith(b"$GP")
        types.add(parse_sentence(raw).sentence_type)
    assert types == {"GGA", "GSA", "GSV", "RMC", "VTG"}


def test_no_fix_at_start_then_a_fix_then_losing_it() -> None:
    clock, sim, port = rig(no_fix_s=5.0)
    sensor = NMEAGPS(port, clock=clock)
    assert sensor.read() == {"fix_quality": 0.0, "satellites_count": 0.0, "hdop": 99.99}
    clock.advance(5)
    values = sensor.read()
    assert values["fix_quality"] == 1.0 and "latitude_deg" in values and "gps_time_unix_s" in values
    sim.no_fix_s = 1e9  # antenna covered
    assert "latitude_deg" not in sensor.read()
    assert sensor.last_fix is not None and sensor.last_fix.latitude_deg == values["latitude_deg"]


def test_backlog_does_not_make_the_driver_report_the_past() -> None:
    clock, _sim, port = rig()
    sensor = NMEAGPS(port, clock=clock)
    sensor.read()
    clock.advance(100)
    values = sensor.read()
    assert values["gps_time_unix_s"] >= UTC_START + 99


def test_corrupt_burst_is_skipped() -> None:
    clock, sim, port = rig()
    sensor = NMEAGPS(port, clock=clock)
    sensor.read()
    clock.advance(0.5)  # the rest of that burst is sent
    port.read(port.in_waiting)
    sim.corrupt_next = 7  # one whole burst
    before = sensor.reader.checksum_errors
    assert "latitude_deg" in sensor.read()
    assert sensor.reader.checksum_errors - before == 7


def test_persistent_corruption_is_a_checksum_error_and_recovers() -> None:
    clock, sim, port = rig()
    sensor = NMEAGPS(port, clock=clock)
    sim.corrupt_next = 10_000
    with pytest.raises(ChecksumError):
        sensor.read()
    sim.corrupt_next = 0
    assert sensor.read()["fix_quality"] == 1.0


def test_line_noise_is_survived() -> None:
    clock, _sim, port = rig()
    sensor = NMEAGPS(port, clock=clock)
    port.inject_garbage(b"\x00\xff$GPGGA,12*\r\n$$$\n")
    assert "altitude_m" in sensor.read()
    port.set_corruption(0.0005)
    for _ in range(20):
        with contextlib.suppress(ChecksumError):
            sensor.read()
    assert sensor.reader.sentences_ok > 50


def test_disconnect_is_a_bus_error_and_the_driver_recovers() -> None:
    clock, _sim, port = rig()
    sensor = NMEAGPS(port, clock=clock)
    port.disconnected = True
    with pytest.raises(BusError, match="errno 5") as info:
        sensor.read()
    assert info.value.errno == 5 and isinstance(info.value.__cause__, serial.SerialException)
    port.disconnected = False
    assert "latitude_deg" in sensor.read()


def test_silent_line_times_out() -> None:
    clock, _sim, port = rig()
    sensor = NMEAGPS(port, clock=clock)
    port.set_silent()
    with pytest.raises(SensorTimeoutError, match="silent"):
        sensor.read()


def test_self_test() -> None:
    clock, sim, port = rig()
    sensor = NMEAGPS(port, clock=clock)
    result = sensor.self_test()
    assert result.passed and "a fix" in result.detail
    assert result.measurements["fix_quality"] == 1.0 and result.measurements["error_rate"] == 0.0
    sim.corrupt_next = 10
    result = sensor.self_test()
    assert not result.passed and "of the lines were rejected" in result.detail


def test_simulator_is_deterministic() -> None:
    outputs = []
    for _ in range(2):
        clock, _sim, port = rig(seed=11)
        sensor = NMEAGPS(port, clock=clock)
        outputs.append([sensor.read() for _ in range(4)])
    assert outputs[0] == outputs[1]


def test_simulator_rejects_bad_knobs() -> None:
    with pytest.raises(ValueError, match="talker"):
        SimulatedNMEA(clock=ManualClock(), talker="gps")
    with pytest.raises(ValueError, match="not on Earth"):
        SimulatedNMEA(clock=ManualClock(), latitude_deg=91.0)


# -- real receivers' habits (issue 16 items 2-4) -----------------------------------------------

# MediaTek and SiRF put a placeholder where the position goes while there is no fix.
MEDIATEK_NO_FIX_GGA = build_sentence(
    "GPGGA,235947.000,8960.000000,N,00000.000000,E,0,0,,137.000,M,13.000,M,,"
).decode()
MEDIATEK_NO_FIX_RMC = build_sentence(
    "GPRMC,235947.000,V,8960.000000,N,00000.000000,E,0.00,0.00,050180,,,N"
).decode()
SIRF_NO_FIX_GGA = build_sentence(
    "GPGGA,000012.000,0000.0000,N,36000.0000,E,0,00,50.0,0.0,M,0.0,M,,0000"
).decode()


@pytest.mark.parametrize("gga", [MEDIATEK_NO_FIX_GGA, SIRF_NO_FIX_GGA])
def test_no_fix_placeholder_position_is_quality_0_not_a_broken_receiver(gga: str) -> None:
    sensor = NMEAGPS(FakePort(b"\r\n" + lines(gga, MEDIATEK_NO_FIX_RMC)), clock=ManualClock())
    values = sensor.read()  # the old driver: "only RMC: enable GGA output"
    assert values["fix_quality"] == 0.0 and "latitude_deg" not in values and "speed_mps" not in values
    assert sensor.reader.malformed == 0


def test_vendor_sentences_and_text_do_not_count_against_the_receiver() -> None:
    pubx03 = "PUBX,03,18" + "".join(
        f",{i + 1:03d},U,{(i * 37) % 360:03d},{(i * 7) % 90:02d},{30 + i % 20:02d},{'00064' if i == 0 else '000'}"
        for i in range(18)
    )
    chatter = [
        build_sentence(pubx03).decode(),
        build_sentence("SNRSTAT,12,38,41").decode(),
        build_sentence("GYOACC,0.12,-0.03,9.81").decode(),
        build_sentence("LOG108,1,0,OK").decode(),
        build_sentence("GPTXT,01,01,02,ANTSTATUS=OK u-blox ag - www.u-blox.com").decode(),
        "MTK GNSS receiver firmware AXN_5.1.6 build 3333 ready",
    ]
    assert len(chatter[0]) == 378  # $ to LF, as captured
    stream = b"\r\n" + lines(*chatter, CLASSIC_GGA, CLASSIC_RMC) * 3
    sensor = NMEAGPS(FakePort(stream), clock=ManualClock())
    result = sensor.self_test()
    assert result.passed, result.detail  # the old driver: "…% of the lines were rejected"
    assert sensor.reader.error_rate == 0.0 and sensor.reader.ignored >= 1
    # What still counts: a bad checksum and a broken standard sentence.
    reader = NMEAReader()
    reader.feed(
        b"\r\n" + lines(CLASSIC_GGA[:-1] + "8", build_sentence("GPGGA,123519,4807.038,N,0113x,E,1").decode())
    )
    assert (reader.checksum_errors, reader.malformed) == (1, 1)


@pytest.mark.parametrize(("quality", "mode"), [(6, "E"), (7, "M"), (8, "S")])
def test_dead_reckoning_manual_and_simulator_fixes_are_no_position(quality: int, mode: str) -> None:
    clock, _sim, port = rig(fix_quality=quality)
    values = NMEAGPS(port, clock=clock).read()
    assert values["fix_quality"] == float(quality)
    assert "latitude_deg" not in values and "speed_mps" not in values
    rmc = parse_sentence(build_sentence(CLASSIC_RMC[1:-3] + f",{mode}")).data
    assert isinstance(rmc, RMC) and not rmc.valid


def test_rmc_navigational_status_of_nmea_4_1() -> None:
    for status, valid in (("S", True), ("C", True), ("U", True), ("V", False)):
        rmc = parse_sentence(build_sentence(CLASSIC_RMC[1:-3] + f",A,{status}")).data
        assert isinstance(rmc, RMC) and rmc.navigational_status == status and rmc.valid is valid


@pytest.mark.parametrize("vendor", ["generic", "ublox", "mediatek", "sirf"])
def test_back_to_back_reads_keep_speed_and_time_of_every_epoch(vendor: str) -> None:
    clock, _sim, port = rig(vendor=vendor)
    sensor = NMEAGPS(port, clock=clock)
    times = []
    for _ in range(27):
        values = sensor.read()  # as the sampler does at 1 s: read after read
        assert "speed_mps" in values, f"read {len(times)}: {values}"
        times.append(values["gps_time_unix_s"])
    assert times == sorted(times) and len(set(times)) == 27
    assert sensor.reader.error_rate == 0.0


def test_an_rmc_of_the_next_epoch_is_kept_for_the_next_read() -> None:
    second_gga = build_sentence(CLASSIC_GGA[1:-3].replace("123519", "123520")).decode()
    second_rmc = build_sentence(CLASSIC_RMC[1:-3].replace("123519", "123520")).decode()
    # u-blox order: RMC before GGA; the first epoch's RMC was before the port opened.
    port = FakePort(b"\r\n" + lines(CLASSIC_GGA, second_rmc, second_gga))
    sensor = NMEAGPS(port, clock=ManualClock())
    assert "speed_mps" not in sensor.read()  # its RMC never came: the next epoch began
    values = sensor.read()
    assert values["gps_time_unix_s"] == datetime(1994, 3, 23, 12, 35, 20, tzinfo=UTC).timestamp()


@pytest.mark.parametrize("vendor", ["mediatek", "sirf"])
def test_simulated_vendor_without_fix_is_quality_0(vendor: str) -> None:
    clock, _sim, port = rig(vendor=vendor, no_fix_s=1e9)
    sensor = NMEAGPS(port, clock=clock)
    assert sensor.read()["fix_quality"] == 0.0
    assert sensor.self_test().passed


class CapturedPort:
    """A capture replayed at the pace it was recorded: each line arrives, on the driver's
    clock, when its last character did; ``readline`` waits for the next line (up to 1 s)."""

    def __init__(self, timed: list[tuple[float, bytes]], clock: ManualClock) -> None:
        self.timed = timed
        self.clock = clock

    @property
    def in_waiting(self) -> int:
        now = self.clock.monotonic()
        return sum(len(line) for t, line in self.timed if t <= now)

    def read(self, size: int = 1) -> bytes:
        out = b""
        while self.timed and self.timed[0][0] <= self.clock.monotonic() and len(out) < size:
            out += self.timed.pop(0)[1]
        return out

    def readline(self, size: int | None = -1, /) -> bytes:
        if not self.timed:
            self.clock.advance(1.0)
            return b""
        wait = self.timed[0][0] - self.clock.monotonic()
        if wait > 1.0:
            self.clock.advance(1.0)
            return b""
        self.clock.advance(max(wait, 0.0))
        return self.timed.pop(0)[1]

    def write(self, data: bytes, /) -> int:
        raise AssertionError("a GPS needs no commands")


def saturated_capture(start: float, epochs: int) -> list[tuple[float, bytes]]:
    """A GPS+GLONASS receiver at the standard's 4800 baud sending GGA, two GSA, six GSV and
    RMC every second: 1.45 s of characters per second, so the line never rests and each
    RMC comes ~1.3 s after its GGA (what a receiver configured for more than its baud rate
    sends; its own buffer holds the rest)."""
    char_s = 10 / 4800
    timed, t = [], start
    for k in range(epochs):
        hhmmss = f"{12:02d}{35 + k // 60:02d}{k % 60:02d}.00"
        gsv = [
            f"{talker}GSV,3,{page},12," + ",".join(f"{prn:02d},45,{(prn * 29) % 360:03d},40" for prn in prns)
            for talker, base in (("GP", 1), ("GL", 65))
            for page, prns in enumerate((range(base + i * 4, base + i * 4 + 4) for i in range(3)), start=1)
        ]
        burst = [
            f"GPGGA,{hhmmss},4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,",
            "GPGSA,A,3,04,05,09,12,24,,,,,,,,2.5,1.3,2.1",
            "GLGSA,A,3,65,66,72,,,,,,,,,,2.5,1.3,2.1",
            *gsv,
            f"GPRMC,{hhmmss},A,4807.038,N,01131.000,E,{k % 9}.5,084.4,230394,003.1,W",
        ]
        t = max(t, start + k)  # the burst starts at its second, or when the line is free
        for body in burst:
            line = build_sentence(body)
            t += len(line) * char_s
            timed.append((t, line))
    return timed


def test_reads_on_a_saturated_line_keep_the_rmc_of_every_fix() -> None:
    clock = ManualClock()
    sensor = NMEAGPS(CapturedPort(saturated_capture(clock.monotonic(), 30), clock), clock=clock)
    readings = [sensor.read() for _ in range(27)]
    lacking = [r for r in readings if "speed_mps" not in r or "gps_time_unix_s" not in r]
    assert lacking == []  # the old driver: all 27 without speed and time (the log: 26 of 27)
    times = [r["gps_time_unix_s"] for r in readings]
    assert times == sorted(times) and len(set(times)) == len(times)
    for r in readings:  # each speed is its own epoch's (k % 9 + 0.5 knots at second k)
        k = round(r["gps_time_unix_s"] - datetime(1994, 3, 23, 12, 35, 0, tzinfo=UTC).timestamp())
        assert r["speed_mps"] == pytest.approx((k % 9 + 0.5) * 1852 / 3600)
