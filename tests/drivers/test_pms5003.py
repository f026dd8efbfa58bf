"""PMS5003: frame arithmetic, the streaming reader, the driver on fakes and on the simulator."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import inspect

import pytest
import serial
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from edge_drivers.clock import ManualClock
from edge_drivers.errors import (
    BusError,
    ChecksumError,
    ChipNotFoundError,
    DataIntegrityError,
    MalformedDataError,
    NotReadyError,
    SensorTimeoutError,
)
from edge_drivers.pms5003 import (
    DATA_WORDS,
    DRIVER,
    PMS5003,
    START,
    CommandReply,
    Frame,
    FrameReader,
    Options,
    command,
    encode_frame,
    parse_frame,
    parse_reply,
)
from edge_drivers.sim.pms5003 import SimulatedPMS5003, cf1_from_atmospheric
from edge_drivers.sim.serial_port import SimulatedSerial

# -- worked examples ------------------------------------------------------------------------
# The manual has no example frame, so these are frames captured from real sensors; each
# checksum was verified by summing bytes 0..29.

# A PMS5003 in a Pimoroni Enviro Urban, quoted with its decoded values in a community
# ESPHome configuration README: PM1.0 2, PM2.5 10, PM10 10 µg/m³, counts 582, 175, 49,
# 22, 0, 0 per 0.1 L.  CF=1 and atmospheric values are equal at such low levels.
ENVIRO_URBAN = bytes.fromhex(
    "42 4D 00 1C 00 02 00 0A 00 0A 00 02 00 0A 00 0A 02 46 00 AF 00 31 00 16 00 00 00 00 97 00 02 AC"
)
# Quoted in the comment of a Chinese PMS5003 driver that maps data[4..9] to CF=1 and
# data[10..15] to the atmospheric environment: at ~40 µg/m³ CF=1 reads higher.
POLLUTED = bytes.fromhex(
    "42 4D 00 1C 00 1D 00 31 00 39 00 19 00 29 00 34 06 CF 05 F3 01 58 00 08 00 00 00 00 12 00 03 E8"
)
# "Sample serial output" of a PMS5003 in clean air, from a sensor project's README: the
# checksum is 0x0142, so its low byte is the first start byte (Adafruit_PM25AQI#10).
CLEAN_AIR = bytes.fromhex(
    "42 4d 00 1c 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 97 00 01 42"
)
# Reply to "passive mode", as logged in several PMS5003 programs ("expecting answer 42 4D 00
# 04 E1 00 01 74").
PASSIVE_REPLY = bytes.fromhex("42 4D 00 04 E1 00 01 74")


def test_host_commands_match_the_manual_table() -> None:
    # Manual v2.3 table, checksums recomputed: the 16-bit sum of the first five bytes.
    assert command(0xE1, 0) == bytes.fromhex("42 4D E1 00 00 01 70")  # passive
    assert command(0xE1, 1) == bytes.fromhex("42 4D E1 00 01 01 71")  # active
    assert command(0xE2) == bytes.fromhex("42 4D E2 00 00 01 71")  # read in passive mode
    assert command(0xE4, 0) == bytes.fromhex("42 4D E4 00 00 01 73")  # sleep
    assert command(0xE4, 1) == bytes.fromhex("42 4D E4 00 01 01 74")  # wake up


def test_enviro_urban_frame() -> None:
    frame = parse_frame(ENVIRO_URBAN)
    assert (frame.pm1_0_ugm3, frame.pm2_5_ugm3, frame.pm10_ugm3) == (2, 10, 10)
    assert (frame.pm1_0_cf1_ugm3, frame.pm2_5_cf1_ugm3, frame.pm10_cf1_ugm3) == (2, 10, 10)
    counts = [getattr(frame, name) for name in DATA_WORDS[6:12]]
    assert counts == [582, 175, 49, 22, 0, 0]
    assert frame.reserved == 0x9700
    assert frame.inconsistencies() == []


def test_cf1_words_come_before_atmospheric_words() -> None:
    frame = parse_frame(POLLUTED)
    assert (frame.pm1_0_cf1_ugm3, frame.pm2_5_cf1_ugm3, frame.pm10_cf1_ugm3) == (29, 49, 57)
    assert (frame.pm1_0_ugm3, frame.pm2_5_ugm3, frame.pm10_ugm3) == (25, 41, 52)
    assert frame.particles_0_3um_per_dl == 1743 and frame.particles_10um_per_dl == 0
    assert frame.measurements()["pm2_5_ugm3"] == 41.0


def test_clean_air_frame_ends_in_0x42() -> None:
    assert CLEAN_AIR[-1] == 0x42
    assert parse_frame(CLEAN_AIR).measurements()["pm10_ugm3"] == 0.0


def test_command_reply() -> None:
    assert parse_reply(PASSIVE_REPLY) == CommandReply(command=0xE1, data=0)


# -- pure functions ---------------------------------------------------------------------------


def test_encode_is_the_inverse_of_parse() -> None:
    for raw in (ENVIRO_URBAN, POLLUTED, CLEAN_AIR):
        assert encode_frame(parse_frame(raw)) == raw


@pytest.mark.parametrize(
    ("raw", "error", "text"),
    [
        (ENVIRO_URBAN[:31], MalformedDataError, "must be 32 bytes, got 31"),
        (b"\x42\x4e" + ENVIRO_URBAN[2:], MalformedDataError, "must start with 42 4D"),
        (ENVIRO_URBAN[:3] + b"\x04" + ENVIRO_URBAN[4:], MalformedDataError, "length field is 4"),
        (ENVIRO_URBAN[:-1] + b"\xad", ChecksumError, "checksum 0x02AD != 0x02AC"),
        (ENVIRO_URBAN[:12] + b"\x0b" + ENVIRO_URBAN[13:], ChecksumError, "0x02AC != 0x02B7"),
    ],
)
def test_parse_frame_rejects(raw: bytes, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        parse_frame(raw)


def test_reader_syncs_on_both_start_bytes() -> None:
    reader = FrameReader()
    # Begins with the tail of a clean-air frame (…01 42): a 0x42-only sync would start there.
    stream = CLEAN_AIR[-5:] + CLEAN_AIR + CLEAN_AIR + b"\x42" + ENVIRO_URBAN
    assert reader.feed(stream) == [parse_frame(CLEAN_AIR)] * 2 + [parse_frame(ENVIRO_URBAN)]
    assert reader.garbage_bytes == 6 and reader.checksum_errors == 0


def test_reader_takes_bytes_one_at_a_time() -> None:
    reader = FrameReader()
    found = []
    for byte in PASSIVE_REPLY + ENVIRO_URBAN:
        assert reader.bytes_needed() >= 1
        found += reader.feed(bytes((byte,)))
    assert found == [CommandReply(0xE1, 0), parse_frame(ENVIRO_URBAN)]
    assert (reader.frames_ok, reader.reply_frames) == (1, 1)


def test_reader_bytes_needed_follows_the_length_field() -> None:
    reader = FrameReader()
    assert reader.bytes_needed() == 32
    reader.feed(PASSIVE_REPLY[:5])
    assert reader.bytes_needed() == 3
    reader.feed(PASSIVE_REPLY[5:] + ENVIRO_URBAN[:10])
    assert reader.bytes_needed() == 22


def test_reader_drops_a_corrupt_frame_and_finds_the_next() -> None:
    reader = FrameReader()
    corrupt = POLLUTED[:20] + bytes((POLLUTED[20] ^ 0x10,)) + POLLUTED[21:]
    assert reader.feed(corrupt + ENVIRO_URBAN) == [parse_frame(ENVIRO_URBAN)]
    assert reader.checksum_errors == 1
    assert reader.error_rate == pytest.approx(0.5)


def test_reader_skips_an_impossible_length_field() -> None:
    reader = FrameReader()
    assert reader.feed(b"BM\x01\x00" + ENVIRO_URBAN) == [parse_frame(ENVIRO_URBAN)]
    assert reader.malformed_frames == 1


# -- fuzzing ----------------------------------------------------------------------------------

words = st.integers(0, 0xFFFF)
frames = st.builds(Frame, **{name: words for name in DATA_WORDS})
# Garbage rich in start bytes and plausible headers, not just random noise.
garbage = st.lists(
    st.one_of(
        st.binary(max_size=12),
        st.sampled_from([b"B", b"M", b"BM", b"BB", b"BM\x00\x1c", b"BM\x00\x04", b"BM\x00", START * 3]),
    ),
    max_size=12,
).map(b"".join)


def false_frame_overlapping(noise: bytes, stream: bytes) -> bool:
    """Does the noise end in the head of a frame that is valid when completed by the real one?

    Then the reader rightly takes that frame, and its bytes, first: nothing can tell
    the two apart.  Checked by brute force, independently of the reader.
    """
    for i in range(len(noise)):
        for size, parse in ((32, parse_frame), (8, parse_reply)):
            if i + size > len(noise) and i + size <= len(stream):
                try:
                    parse(stream[i : i + size])
                except DataIntegrityError:
                    continue
                return True
    return False


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_parse_frame_raises_only_integrity_errors(data: bytes) -> None:
    try:
        frame = parse_frame(data)
    except DataIntegrityError:
        return
    assert encode_frame(frame) == data


@settings(max_examples=200, deadline=None)
@given(frames, st.integers(0, 31), st.integers(1, 255))
def test_any_single_byte_error_is_detected(frame: Frame, index: int, delta: int) -> None:
    raw = bytearray(encode_frame(frame))
    raw[index] = (raw[index] + delta) % 256
    with pytest.raises(DataIntegrityError):
        parse_frame(bytes(raw))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=20))
def test_reader_never_raises(chunks: list[bytes]) -> None:
    reader = FrameReader()
    for chunk in chunks:
        for item in reader.feed(chunk):
            if isinstance(item, Frame):
                parse_frame(encode_frame(item))
    assert 0.0 <= reader.error_rate <= 1.0


@settings(max_examples=300, deadline=None)
@given(garbage, frames, st.lists(st.integers(1, 40), max_size=8))
def test_frame_after_garbage_is_always_found(noise: bytes, frame: Frame, cuts: list[int]) -> None:
    stream = noise + encode_frame(frame)
    assume(not false_frame_overlapping(noise, stream))
    reader = FrameReader()
    found = []
    position = 0
    for cut in cuts:
        found += reader.feed(stream[position : position + cut])
        position += cut
    found += reader.feed(stream[position:])
    assert found and found[-1] == frame


# -- the driver on a minimal port written here ----------------------------------------------


class FakePort:
    """Only what every pyserial-compatible object has: read, readline, write (no in_waiting)."""

    def __init__(self, data: bytes = b"", *, answers: dict[bytes, bytes] | None = None) -> None:
        self.rx = bytearray(data)
        self.written = bytearray()
        self.answers = answers or {}
        self.fail_with: OSError | None = None

    def read(self, size: int = 1) -> bytes:
        if self.fail_with:
            raise self.fail_with
        out = bytes(self.rx[:size])
        del self.rx[:size]
        return out

    def readline(self, size: int | None = -1, /) -> bytes:
        raise AssertionError("a binary protocol has no lines")

    def write(self, data: bytes, /) -> int:
        if self.fail_with:
            raise self.fail_with
        self.written += data
        self.rx += self.answers.get(bytes(data), b"")
        return len(data)


def test_preloaded_frame_is_read_from_a_minimal_port() -> None:
    port = FakePort(b"\x00\x42\x42" + ENVIRO_URBAN)
    sensor = PMS5003(port, clock=ManualClock())
    assert sensor.read()["pm2_5_ugm3"] == 10.0
    assert port.written == command(0xE1, 1)  # active mode set at start-up, no wake-up


def test_passive_mode_on_a_minimal_port() -> None:
    port = FakePort(answers={command(0xE1, 0): PASSIVE_REPLY, command(0xE2): POLLUTED})
    sensor = PMS5003(port, clock=ManualClock(), mode="passive")
    assert sensor.read()["pm10_cf1_ugm3"] == 57.0
    assert port.written == command(0xE1, 0) + command(0xE2)
    assert sensor.reader.reply_frames == 1


def test_passive_mode_asks_again_when_an_answer_is_lost() -> None:
    port = FakePort()
    sensor = PMS5003(port, clock=ManualClock(), mode="passive", timeout_s=2.5)
    with pytest.raises(SensorTimeoutError, match="silent"):
        sensor.read()
    assert port.written.count(command(0xE2)) == 3  # at 0 s, 1 s and 2 s


def test_silent_port_times_out() -> None:
    clock = ManualClock()
    sensor = PMS5003(FakePort(), clock=clock, timeout_s=4.0)
    with pytest.raises(SensorTimeoutError, match=r"no valid frame within 4 s; the line is silent"):
        sensor.read()
    assert clock.monotonic() == pytest.approx(1004.0, abs=0.1)


def test_another_device_on_the_port_is_named_as_such() -> None:
    nmea = b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n" * 3
    sensor = PMS5003(FakePort(nmea), clock=ManualClock())
    with pytest.raises(SensorTimeoutError, match="wrong device or baud rate"):
        sensor.read()


def test_only_corrupt_frames_give_a_checksum_error() -> None:
    sensor = PMS5003(FakePort(ENVIRO_URBAN[:-1] + b"\x00"), clock=ManualClock())
    with pytest.raises(ChecksumError, match="1 corrupt frame"):
        sensor.read()


def test_port_error_at_start_up_means_no_sensor() -> None:
    port = FakePort()
    port.fail_with = OSError(errno.ENXIO, "No such device or address")
    with pytest.raises(ChipNotFoundError, match="cannot send the mode command") as info:
        PMS5003(port, clock=ManualClock())
    assert info.value.__cause__ is port.fail_with


def test_port_error_while_reading_is_a_bus_error_with_errno() -> None:
    port = FakePort()
    sensor = PMS5003(port, clock=ManualClock())
    port.fail_with = OSError(errno.EIO, "Input/output error")
    with pytest.raises(BusError, match="errno 5 EIO") as info:
        sensor.read()
    assert info.value.errno == errno.EIO and info.value.__cause__ is port.fail_with


def test_self_test_flags_an_impossible_frame() -> None:
    inverted = Frame(9, 5, 7, 9, 5, 7, 10, 20, 0, 0, 0, 0)  # PM1.0 > PM2.5, counts rising
    sensor = PMS5003(FakePort(encode_frame(inverted)), clock=ManualClock())
    result = sensor.self_test()
    assert not result.passed
    assert "PM1.0 <= PM2.5 <= PM10 violated" in result.detail and "counts increase" in result.detail


@pytest.mark.parametrize(
    ("options", "name"),
    [({"mode": "fast"}, "mode"), ({"timeout_s": 0}, "timeout_s"), ({"warmup_s": -1.0}, "warmup_s")],
)
def test_bad_options_name_the_option(options: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        PMS5003(FakePort(), clock=ManualClock(), **options)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=name):
        Options(**options)


def test_options_model_mirrors_the_keyword_options() -> None:
    parameters = inspect.signature(PMS5003).parameters
    keyword = {n: p.default for n, p in parameters.items() if p.kind is p.KEYWORD_ONLY and n != "clock"}
    assert dataclasses.asdict(Options()) == keyword
    with pytest.raises(ValueError):
        Options(**{"baud": 9600})


def test_driver_spec() -> None:
    assert (DRIVER.name, DRIVER.bus, DRIVER.default_baudrate) == ("pms5003", "serial", 9600)
    assert [q.name for q in DRIVER.quantities] == list(parse_frame(POLLUTED).measurements())
    assert DRIVER.addresses == () and DRIVER.identify is None
    assert DRIVER.options is Options


# -- against the simulator ------------------------------------------------------------------


def rig(seed: int = 7, **knobs: object) -> tuple[ManualClock, SimulatedPMS5003, SimulatedSerial]:
    clock = ManualClock()
    sim = SimulatedPMS5003(clock=clock, seed=seed, **knobs)  # type: ignore[arg-type]
    return clock, sim, SimulatedSerial(sim, clock=clock, seed=seed)


def test_simulated_values_are_plausible_and_consistent() -> None:
    clock, sim, port = rig()
    sensor = PMS5003(port, clock=clock)
    for _ in range(20):
        values = sensor.read()
        assert 0 < values["pm2_5_ugm3"] < 40
        assert values["pm1_0_ugm3"] <= values["pm2_5_ugm3"] <= values["pm10_ugm3"]
        assert values["pm2_5_cf1_ugm3"] >= values["pm2_5_ugm3"]
        assert sensor.last_frame is not None and sensor.last_frame.inconsistencies() == []
        assert values["pm2_5_ugm3"] == pytest.approx(sim.signals["pm2_5_ugm3"].true_value(), abs=4)
        clock.advance(30)


def test_cf1_model_equals_atmospheric_when_clean_and_exceeds_it_when_polluted() -> None:
    assert cf1_from_atmospheric(10.0) == 10.0
    assert cf1_from_atmospheric(50.0) == pytest.approx(62.5)
    assert cf1_from_atmospheric(200.0) == pytest.approx(300.0)


def test_values_change_over_simulated_time() -> None:
    clock, _sim, port = rig()
    sensor = PMS5003(port, clock=clock)
    seen = set()
    for _ in range(10):
        seen.add(tuple(sensor.read().values()))
        clock.advance(600)
    assert len(seen) > 5


def test_active_mode_returns_the_newest_buffered_frame() -> None:
    clock, sim, port = rig()
    sensor = PMS5003(port, clock=clock)
    sensor.read()
    clock.advance(60)  # ~26 frames pile up in the port
    before = sensor.reader.frames_ok
    assert sensor.read() == sim.last_frame.measurements()  # type: ignore[union-attr]
    assert sensor.reader.frames_ok - before >= 25
    assert port.bytes_written == command(0xE1, 1)  # nothing else was sent


def test_a_sensor_left_in_passive_mode_is_switched_to_active() -> None:
    clock, sim, port = rig(mode="passive")
    clock.advance(3600)  # silent all that time
    sensor = PMS5003(port, clock=clock)
    assert sim.mode == "active"
    assert sensor.read()["pm10_ugm3"] > 0
    assert sim.frames_sent == 1


def test_a_sensor_left_asleep_stays_silent_until_woken() -> None:
    clock, sim, port = rig(asleep=True)
    sensor = PMS5003(port, clock=clock, warmup_s=0)
    with pytest.raises(SensorTimeoutError, match="silent"):
        sensor.read()
    sensor.wake()
    woke_at = clock.monotonic()
    assert sensor.read()["pm2_5_ugm3"] >= 0
    assert sim.frames_sent == 1
    assert clock.monotonic() - woke_at == pytest.approx(2.5 + 32 * 10 / 9600, abs=0.01)  # first frame


def test_passive_mode_on_the_wire() -> None:
    clock, sim, port = rig()
    sensor = PMS5003(port, clock=clock, mode="passive")
    first = sensor.read()
    clock.advance(100)
    assert sensor.read() != first
    assert sim.mode == "passive" and sim.frames_sent == 2  # only the requested frames
    assert port.bytes_written == command(0xE1, 0) + command(0xE2) * 2
    assert sim.commands == [(0xE1, 0), (0xE2, 0), (0xE2, 0)]


def test_sleep_and_wake_with_the_fan_spin_up() -> None:
    clock, sim, port = rig()
    sensor = PMS5003(port, clock=clock)
    sensor.read()
    sensor.sleep()
    assert sim.asleep
    with pytest.raises(SensorTimeoutError, match=r"call wake\(\)"):
        sensor.read()
    sensor.wake()
    assert not sim.asleep and sim.commands[-2:] == [(0xE4, 0), (0xE4, 1)]
    woke_at = clock.monotonic()
    with pytest.raises(SensorTimeoutError, match="spinning up after wake-up; stable data in 30 s"):
        sensor.read()
    clock.advance(27)  # 3 s left: read() waits them out, then discards the spin-up frames
    discarded_before = sensor.reader.frames_ok
    sensor.read()
    assert sensor.reader.frames_ok - discarded_before >= 10
    assert sensor.last_frame == sim.last_frame
    assert clock.monotonic() >= woke_at + 30


def test_no_wake_up_and_no_spin_up_wait_at_construction() -> None:
    clock, _sim, port = rig()
    sensor = PMS5003(port, clock=clock)
    sensor.read()
    assert clock.monotonic() < 1003.0
    assert port.bytes_written == command(0xE1, 1)


def test_corrupt_frame_is_skipped() -> None:
    clock, sim, port = rig()
    sensor = PMS5003(port, clock=clock)
    sim.corrupt_next = 1
    sensor.read()
    assert sensor.reader.checksum_errors == 1
    assert sensor.last_frame == sim.last_frame


def test_persistent_corruption_is_a_checksum_error_and_recovers() -> None:
    clock, sim, port = rig()
    sensor = PMS5003(port, clock=clock)
    sim.corrupt_next = 1000
    with pytest.raises(ChecksumError, match="corrupt frame"):
        sensor.read()
    sim.corrupt_next = 0
    assert sensor.read()["pm2_5_ugm3"] >= 0


def test_line_noise_and_garbage_are_survived() -> None:
    clock, _sim, port = rig()
    sensor = PMS5003(port, clock=clock)
    port.inject_garbage(b"BM\x00\x1cBM\x42\x42\x4d\xff" * 5)
    sensor.read()
    port.set_corruption(0.002)
    for _ in range(30):
        # Every frame of a 5 s window may be hit: possible, and reported as such.
        with contextlib.suppress(ChecksumError):
            sensor.read()
    assert sensor.reader.frames_ok > 20


def test_disconnect_is_a_bus_error_and_the_driver_recovers() -> None:
    clock, _sim, port = rig()
    sensor = PMS5003(port, clock=clock)
    port.disconnected = True
    with pytest.raises(BusError, match="errno 5") as info:
        sensor.read()
    assert info.value.errno == 5 and isinstance(info.value.__cause__, serial.SerialException)
    port.disconnected = False
    assert "pm1_0_ugm3" in sensor.read()


def test_absent_adapter_at_start_up() -> None:
    clock, _sim, port = rig()
    port.disconnected = True
    with pytest.raises(ChipNotFoundError):
        PMS5003(port, clock=clock)


def test_silent_line_times_out_then_recovers() -> None:
    clock, _sim, port = rig()
    sensor = PMS5003(port, clock=clock)
    port.set_silent()
    with pytest.raises(SensorTimeoutError, match="silent"):
        sensor.read()
    port.set_silent(False)
    assert sensor.read()


def test_self_test_on_the_simulator() -> None:
    clock, sim, port = rig()
    sensor = PMS5003(port, clock=clock)
    result = sensor.self_test()
    assert result.passed, result.detail
    assert result.measurements["frames_ok"] >= 1 and result.measurements["error_rate"] == 0.0
    sim.corrupt_next = 1  # one bad frame out of four (two good, one reply) is far too many
    result = sensor.self_test()
    assert not result.passed and "frame error rate 25.0% exceeds 10%" in result.detail
    assert result.measurements["checksum_errors"] == 1


def test_simulator_is_deterministic() -> None:
    outputs = []
    for _ in range(2):
        clock, _sim, port = rig(seed=42)
        sensor = PMS5003(port, clock=clock)
        outputs.append([sensor.read() for _ in range(5)])
    assert outputs[0] == outputs[1]


def test_simulator_replies_to_mode_and_sleep_but_not_to_wake() -> None:
    clock, sim, port = rig()
    port.write(command(0xE1, 0) + command(0xE4, 0) + command(0xE4, 1))
    clock.advance(0.5)
    replies = FrameReader().feed(port.read(port.in_waiting))
    assert replies == [CommandReply(0xE1, 0), CommandReply(0xE4, 0)]
    port.write(command(0xE2)[:-1] + b"\x00")  # bad checksum: ignored
    assert sim.commands == [(0xE1, 0), (0xE4, 0), (0xE4, 1)]


# -- warm-up and frames that are not measurements yet (issue 16 item 5) -----------------------

# What a PMS5003 sends in its first seconds after power-up: well-formed frames, all zero
# (version byte 0x97 in word 13 as in captures), then one with a mass but no count.
WARM_UP_ZERO = encode_frame(Frame(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, reserved=0x9700))
MASS_WITHOUT_COUNTS = encode_frame(Frame(0, 0, 32, 0, 0, 32, 0, 0, 0, 0, 0, 0, reserved=0x9700))


def test_warm_up_frames_are_not_ready_not_clean_air() -> None:
    sensor = PMS5003(FakePort(WARM_UP_ZERO * 2 + MASS_WITHOUT_COUNTS + ENVIRO_URBAN), clock=ManualClock())
    for _ in range(2):
        with pytest.raises(NotReadyError, match="all-zero frame: the sensor is warming up"):
            sensor.read()  # the old driver returned PM2.5 = 0
    with pytest.raises(NotReadyError, match=r"PM10 32 µg/m³\) but no particle counted"):
        sensor.read()  # the old driver returned PM10 = 32
    assert sensor.read()["pm2_5_ugm3"] == 10.0
    assert sensor.reader.frames_ok == 4 and sensor.reader.checksum_errors == 0


def test_self_test_during_warm_up_cannot_judge() -> None:
    sensor = PMS5003(FakePort(WARM_UP_ZERO), clock=ManualClock())
    with pytest.raises(NotReadyError):
        sensor.self_test()  # an error (cannot judge), not a failed sensor


def test_simulated_power_up_sends_zero_frames_then_values() -> None:
    clock, sim, port = rig(zero_frames=2)
    sensor = PMS5003(port, clock=clock)
    outcomes = []
    for _ in range(4):
        try:
            sensor.read()
            outcomes.append("value")
        except NotReadyError:
            outcomes.append("not ready")
        clock.advance(2.3)
    sensor.read()  # takes whatever was sent meanwhile
    sim.massless_next = 1
    clock.advance(2.3)
    with pytest.raises(NotReadyError, match="no particle counted"):
        sensor.read()
    assert outcomes == ["not ready", "not ready", "value", "value"]
