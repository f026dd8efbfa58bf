"""SHT3x driver and simulator tests (Sensirion SHT3x-DIS datasheet v5, May 2018)."""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import inspect
import itertools
from collections import deque
from collections.abc import Callable, Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from smbus2 import i2c_msg

from edge_drivers.clock import ManualClock
from edge_drivers.errors import (
    BusError,
    ChecksumError,
    ChipNotFoundError,
    MalformedDataError,
    SensorTimeoutError,
    WrongChipError,
)
from edge_drivers.sht3x import (
    DRIVER,
    MEASUREMENT_TIME_S,
    Options,
    SHT3x,
    Status,
    crc8,
    identify,
    parse_words,
    relative_humidity_pct,
    temperature_c,
)
from edge_drivers.sim.ads1115 import SimulatedADS1115
from edge_drivers.sim.i2c_bus import BusFault, RegisterDevice, SimulatedSMBus
from edge_drivers.sim.sht3x import SimulatedSHT3x, ticks_from_humidity, ticks_from_temperature

I2C_M_RD = 0x0001
START_UP = [0x3093, 0x30A2, 0xF32D, 0x3041]
EPS = 1e-9  # float slack on clock differences


def command(bus: SimulatedSMBus, code: int, address: int = 0x44) -> None:
    bus.i2c_rdwr(i2c_msg.write(address, [code >> 8, code & 0xFF]))


def read_raw(bus: SimulatedSMBus, length: int, address: int = 0x44) -> bytes:
    msg = i2c_msg.read(address, length)
    bus.i2c_rdwr(msg)
    return bytes(msg)


class Rig:
    def __init__(self, seed: int = 7, **options: object) -> None:
        self.clock = ManualClock()
        self.bus = SimulatedSMBus(seed=seed)
        self.sim = SimulatedSHT3x(0x44, clock=self.clock, seed=seed)
        self.bus.attach(self.sim)
        self.driver = SHT3x(self.bus, clock=self.clock, **options)  # type: ignore[arg-type]


@pytest.fixture
def rig() -> Rig:
    return Rig()


class TripwireBus(SimulatedSMBus):
    """Runs ``action`` once, right after a write of ``trigger`` (a command) goes through."""

    def __init__(self, trigger: int, action: Callable[[], None] | None = None) -> None:
        super().__init__(seed=1)
        self.trigger = bytes([trigger >> 8, trigger & 0xFF])
        self.action = action

    def i2c_rdwr(self, *msgs: i2c_msg) -> None:
        super().i2c_rdwr(*msgs)
        for msg in msgs:
            if not msg.flags & I2C_M_RD and bytes(msg) == self.trigger and self.action is not None:
                action, self.action = self.action, None
                action()


# -- 1. Datasheet worked examples on a byte fake written here ---------------------------------


class CommandFake:
    """A bare stand-in for the chip: logs each write with its time, answers reads from a queue.

    It offers only ``i2c_rdwr``: a driver reaching for ``read_i2c_block_data`` (which would
    send a stray register byte) fails here.
    """

    def __init__(self, clock: ManualClock, replies: Iterable[bytes]) -> None:
        self.clock = clock
        self.replies = deque(replies)
        self.writes: list[tuple[float, bytes]] = []
        self.reads: list[float] = []

    def i2c_rdwr(self, *msgs: i2c_msg) -> None:
        for msg in msgs:
            assert msg.addr == 0x44
            if msg.flags & I2C_M_RD:
                data = self.replies.popleft()
                assert len(data) == msg.len
                ctypes.memmove(msg.buf, data, len(data))
                self.reads.append(self.clock.monotonic())
            else:
                self.writes.append((self.clock.monotonic(), bytes(msg)))


# Status 0x8010 (alert pending + reset detected: the power-up value, DS Table 18).
# CRC bytes computed by hand from the Table 20 algorithm, independently of the driver.
STATUS_AFTER_RESET = bytes([0x80, 0x10, 0xE1])


def test_crc_datasheet_example() -> None:
    # DS Table 20: "CRC (0xBEEF) = 0x92".
    assert crc8(b"\xbe\xef") == 0x92


def test_crc_catalogue_check_value() -> None:
    # CRC catalogue, CRC-8/NRSC-5 (width 8, poly 0x31, init 0xFF, no reflection, xorout 0):
    # check value over ASCII "123456789" is 0xF7.
    assert crc8(b"123456789") == 0xF7


@pytest.mark.parametrize(
    ("raw", "word", "t_c", "rh_pct"),
    [
        # DS §4.13: T = -45 + 175 * S_T / 65535, RH = 100 * S_RH / 65535.
        (0x0000, b"\x00\x00\x81", -45.0, 0.0),  # bottom of the scale, exact
        (0x6666, b"\x66\x66\x93", 25.0, 40.0),  # 0x6666 / 0xFFFF = 0.4 exactly: 25 °C, 40 %RH
        (0x8000, b"\x80\x00\xa2", 42.50133516, 50.00076295),  # half scale: 65535 (not 2^16) shows
        (0xFFFF, b"\xff\xff\xac", 130.0, 100.0),  # top of the scale, exact
    ],
)
def test_read_converts_datasheet_formula(raw: int, word: bytes, t_c: float, rh_pct: float) -> None:
    clock = ManualClock()
    fake = CommandFake(clock, [STATUS_AFTER_RESET, word + word])
    reading = SHT3x(fake, clock=clock).read()  # type: ignore[arg-type]
    assert reading["temperature_c"] == pytest.approx(t_c, abs=1e-8)
    assert reading["relative_humidity_pct"] == pytest.approx(rh_pct, abs=1e-8)
    if raw in (0x0000, 0x6666, 0xFFFF):
        assert reading == {"temperature_c": t_c, "relative_humidity_pct": rh_pct}


def test_bytes_on_the_wire_and_timing() -> None:
    clock = ManualClock()
    fake = CommandFake(clock, [STATUS_AFTER_RESET, b"\x66\x66\x93\x80\x00\xa2"])
    SHT3x(fake, clock=clock).read()  # type: ignore[arg-type]
    sent = [data for _, data in fake.writes]
    # Break, soft reset, read status, clear status, then single shot high repeatability
    # without clock stretching (DS Tables 13, 14, 17, 19, 9).
    assert sent == [b"\x30\x93", b"\x30\xa2", b"\xf3\x2d", b"\x30\x41", b"\x24\x00"]
    times = [t for t, _ in fake.writes]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) > 0.001 - EPS  # DS §4: 1 ms between commands
    assert times[2] - times[1] > 0.0015 - EPS  # soft reset time t_SR <= 1.5 ms (Table 4)
    assert fake.reads[-1] - times[-1] > 0.0155 - EPS  # max measurement time, high repeatability (Table 5)


# -- 2. Pure functions -----------------------------------------------------------------------------


def test_parse_words_rejects_a_bad_crc() -> None:
    with pytest.raises(ChecksumError, match=r"word 1 .*expected 0xA2"):
        parse_words(b"\x66\x66\x93\x80\x00\xa3", "measurement")


def test_parse_words_rejects_a_partial_word() -> None:
    with pytest.raises(MalformedDataError, match="5 bytes"):
        parse_words(b"\x66\x66\x93\x80\x00", "measurement")


def test_status_decoding() -> None:
    # DS Table 18 bit positions.
    after_reset = Status.from_word(0x8010)
    assert after_reset.alert_pending and after_reset.reset_detected
    assert not (after_reset.heater_on or after_reset.command_failed or after_reset.write_checksum_failed)
    assert Status.from_word(0x2000).heater_on
    everything = Status.from_word(0xAC13)
    assert everything.rh_tracking_alert and everything.t_tracking_alert
    assert everything.command_failed and everything.write_checksum_failed
    assert Status.from_word(0x0000) == Status(0, *([False] * 7))


@given(st.integers(0, 0xFFFF))
def test_simulator_inverts_the_conversion_exactly(raw: int) -> None:
    assert ticks_from_temperature(temperature_c(raw)) == raw
    assert ticks_from_humidity(relative_humidity_pct(raw)) == raw


def test_options_model_matches_the_constructor() -> None:
    params = inspect.signature(SHT3x).parameters
    keyword_options = {n: p.default for n, p in params.items() if p.kind is p.KEYWORD_ONLY and n != "clock"}
    assert keyword_options == dataclasses.asdict(Options())
    assert all(field.metadata.get("description") for field in dataclasses.fields(Options))


@pytest.mark.parametrize(
    ("options", "name"),
    [({"repeatability": "ultra"}, "repeatability"), ({"heater_test_s": 0.1}, "heater_test_s")],
)
def test_bad_options_name_the_option(options: dict[str, object], name: str) -> None:
    clock = ManualClock()
    with pytest.raises(ValueError, match=name):
        SHT3x(SimulatedSMBus(), clock=clock, **options)  # type: ignore[arg-type]


# -- 3. Against the simulator ----------------------------------------------------------------------


def test_start_up_sequence_on_the_simulator(rig: Rig) -> None:
    assert rig.sim.commands == START_UP
    assert rig.sim.spacing_violations == 0
    status = rig.driver.status()
    assert not status.reset_detected and not status.alert_pending  # cleared after start-up


def test_plausible_values_that_change_over_time(rig: Rig) -> None:
    readings = []
    for _ in range(6):
        reading = rig.driver.read()
        assert 15 < reading["temperature_c"] < 27
        assert 25 < reading["relative_humidity_pct"] < 65
        readings.append(reading)
        rig.clock.advance(120)
    assert len({r["temperature_c"] for r in readings}) == len(readings)
    assert max(r["temperature_c"] for r in readings) - min(r["temperature_c"] for r in readings) > 0.1
    assert rig.sim.spacing_violations == 0


def test_simulator_is_deterministic_with_a_seed() -> None:
    def readings(seed: int) -> list[dict[str, float]]:
        rig = Rig(seed=seed)
        out = []
        for _ in range(3):
            out.append(rig.driver.read())
            rig.clock.advance(60)
        return out

    assert readings(5) == readings(5)
    assert readings(5) != readings(6)


@pytest.mark.parametrize(("repeatability", "code"), [("high", 0x2400), ("medium", 0x240B), ("low", 0x2416)])
def test_repeatability_option(repeatability: str, code: int) -> None:
    rig = Rig(repeatability=repeatability)
    started = rig.clock.monotonic()
    rig.driver.read()
    elapsed = rig.clock.monotonic() - started
    assert rig.sim.commands[-1] == code
    assert MEASUREMENT_TIME_S[repeatability] - EPS < elapsed < MEASUREMENT_TIME_S[repeatability] + 0.003  # type: ignore[index]


def test_options_from_the_model(rig: Rig) -> None:
    opts = Options(**{"repeatability": "low", "heater_test_s": 2})
    driver = SHT3x(rig.bus, 0x44, clock=rig.clock, **dataclasses.asdict(opts))
    driver.read()
    assert rig.sim.commands[-1] == 0x2416


def test_simulator_nacks_until_the_measurement_is_done_and_then_once_more() -> None:
    clock = ManualClock()
    bus = SimulatedSMBus()
    bus.attach(SimulatedSHT3x(0x44, clock=clock, seed=1))
    command(bus, 0x2400)
    with pytest.raises(OSError) as early:
        read_raw(bus, 6)
    assert early.value.errno == errno.EREMOTEIO
    clock.advance(0.0125)  # typical high-repeatability duration
    words = parse_words(read_raw(bus, 6), "measurement")
    assert 15 < temperature_c(words[0]) < 27
    with pytest.raises(OSError):  # the data was read once: nothing left
        read_raw(bus, 6)


def test_simulator_clock_stretching_holds_the_read() -> None:
    clock = ManualClock()
    bus = SimulatedSMBus()
    bus.attach(SimulatedSHT3x(0x44, clock=clock, seed=1))
    command(bus, 0x2C06)
    started = clock.monotonic()
    assert len(parse_words(read_raw(bus, 6), "measurement")) == 2
    assert clock.monotonic() - started == pytest.approx(0.0125)


def test_simulator_periodic_mode() -> None:
    clock = ManualClock()
    bus = SimulatedSMBus()
    sim = bus.attach(SimulatedSHT3x(0x44, clock=clock, seed=1))
    assert isinstance(sim, SimulatedSHT3x)
    command(bus, 0x2130)  # 1 mps, high repeatability
    clock.advance(0.002)
    command(bus, 0xE000)
    with pytest.raises(OSError):  # no acquisition yet
        read_raw(bus, 6)
    clock.advance(0.02)
    command(bus, 0xE000)
    assert len(parse_words(read_raw(bus, 6), "fetch")) == 2
    clock.advance(0.002)
    command(bus, 0xE000)
    with pytest.raises(OSError):  # the fetch cleared the data memory
        read_raw(bus, 6)
    clock.advance(0.002)
    command(bus, 0x30A2)  # soft reset: ignored in periodic mode
    clock.advance(0.002)
    command(bus, 0xF32D)
    status = Status.from_word(parse_words(read_raw(bus, 3), "status")[0])
    assert status.command_failed  # the ignored soft reset
    clock.advance(1.0)
    command(bus, 0xE000)  # still acquiring
    assert len(parse_words(read_raw(bus, 6), "fetch")) == 2
    command(bus, 0x3093)  # break
    clock.advance(0.001)
    command(bus, 0xE000)  # not in periodic mode any more
    clock.advance(0.001)
    command(bus, 0xF32D)
    assert Status.from_word(parse_words(read_raw(bus, 3), "status")[0]).command_failed


def test_driver_stops_a_chip_left_in_periodic_mode() -> None:
    clock = ManualClock()
    bus = SimulatedSMBus()
    sim = SimulatedSHT3x(0x44, clock=clock, seed=3)
    bus.attach(sim)
    command(bus, 0x2737)  # 10 mps, left running by another program
    clock.advance(5)
    driver = SHT3x(bus, clock=clock)
    assert not driver.status().command_failed  # the soft reset after the break was processed
    assert 15 < driver.read()["temperature_c"] < 27


def test_simulator_status_bits(rig: Rig) -> None:
    rig.clock.advance(0.002)
    command(rig.bus, 0x1234)  # not a command
    assert rig.driver.status().command_failed
    rig.driver.read()
    assert not rig.driver.status().command_failed  # the last command was fine
    rig.clock.advance(0.002)
    rig.bus.i2c_rdwr(i2c_msg.write(0x44, [0x61, 0x1D, 0x12, 0x34, 0x00]))  # alert limit, bad data CRC
    assert rig.driver.status().write_checksum_failed
    rig.bus.i2c_rdwr(i2c_msg.write(0x00, [0x06]))  # general-call reset
    rig.clock.advance(0.002)
    status = rig.driver.status()
    assert status.reset_detected and status.alert_pending and not status.write_checksum_failed


def test_simulated_heater_warms_and_dries() -> None:
    clock = ManualClock()
    bus = SimulatedSMBus()
    sim = SimulatedSHT3x(0x44, clock=clock, seed=5)
    sim.signals["temperature_c"].noise = 0.0
    sim.signals["relative_humidity_pct"].noise = 0.0
    bus.attach(sim)
    driver = SHT3x(bus, clock=clock)
    before = driver.read()
    clock.advance(0.002)
    command(bus, 0x306D)
    assert driver.status().heater_on
    clock.advance(10)
    hot = driver.read()
    assert 2.0 < hot["temperature_c"] - before["temperature_c"] < 4.0  # "a few degrees" (§4.10)
    assert hot["relative_humidity_pct"] < before["relative_humidity_pct"] - 5


def test_self_test_passes_and_leaves_the_heater_off(rig: Rig) -> None:
    started = rig.clock.monotonic()
    result = rig.driver.self_test()
    assert result.passed, result.detail
    assert rig.clock.monotonic() - started >= 1.0
    assert result.measurements["delta_c"] >= 0.5
    assert (
        result.measurements["t_after_c"] - result.measurements["t_before_c"] == result.measurements["delta_c"]
    )
    assert rig.sim.commands.index(0x306D) < rig.sim.commands.index(0x3066)
    assert not rig.driver.status().heater_on


def test_self_test_fails_with_a_dead_heater(rig: Rig) -> None:
    rig.sim.dead_heater = True
    result = rig.driver.self_test()
    assert not result.passed
    assert "rose" in result.detail and "heater status bit" not in result.detail


def test_self_test_turns_the_heater_off_after_a_bus_error() -> None:
    clock = ManualClock()
    bus = TripwireBus(0x306D)
    sim = SimulatedSHT3x(0x44, clock=clock, seed=2)
    bus.attach(sim)
    driver = SHT3x(bus, clock=clock)
    bus.action = lambda: bus.inject(0x44, BusFault(errno=errno.EIO))  # the status read after "heater on"
    with pytest.raises(BusError) as failure:
        driver.self_test()
    assert failure.value.errno == errno.EIO
    assert sim.commands[-1] == 0x3066
    assert not sim.status_word() & 0x2000


def test_self_test_reports_a_crc_failure_and_turns_the_heater_off() -> None:
    clock = ManualClock()
    bus = TripwireBus(0x306D)
    sim = SimulatedSHT3x(0x44, clock=clock, seed=2)
    bus.attach(sim)
    driver = SHT3x(bus, clock=clock)
    bus.action = lambda: setattr(sim, "corrupt_crc", 1)
    result = driver.self_test()
    assert not result.passed and "CRC" in result.detail
    assert not sim.status_word() & 0x2000


# -- 4. Fault injection ------------------------------------------------------------------------------


def test_nack_is_a_bus_error_keeping_errno_then_recovers(rig: Rig) -> None:
    rig.bus.inject(0x44)
    with pytest.raises(BusError, match="0x2400") as failure:
        rig.driver.read()
    assert failure.value.errno == errno.EREMOTEIO
    assert isinstance(failure.value.__cause__, OSError)
    assert 15 < rig.driver.read()["temperature_c"] < 27


def test_eio_is_a_bus_error(rig: Rig) -> None:
    rig.bus.inject(0x44, BusFault(errno=errno.EIO))
    with pytest.raises(BusError) as failure:
        rig.driver.read()
    assert failure.value.errno == errno.EIO


def test_a_not_ready_nack_on_the_read_is_retried() -> None:
    clock = ManualClock()
    bus = TripwireBus(0x2400)
    bus.attach(SimulatedSHT3x(0x44, clock=clock, seed=2))
    driver = SHT3x(bus, clock=clock)
    bus.action = lambda: bus.inject(0x44, BusFault(count=2))  # the first two reads are NACKed
    assert 15 < driver.read()["temperature_c"] < 27


def test_an_enxio_nack_on_the_read_is_retried_too() -> None:
    # ENXIO is the kernel's documented "address not acknowledged" code (i2c fault-codes).
    clock = ManualClock()
    bus = TripwireBus(0x2400)
    bus.attach(SimulatedSHT3x(0x44, clock=clock, seed=2))
    driver = SHT3x(bus, clock=clock)
    bus.action = lambda: bus.inject(0x44, BusFault(errno=errno.ENXIO))
    assert 15 < driver.read()["temperature_c"] < 27


def test_eio_on_the_read_is_a_bus_error_not_a_timeout() -> None:
    clock = ManualClock()
    bus = TripwireBus(0x2400)
    bus.attach(SimulatedSHT3x(0x44, clock=clock, seed=2))
    driver = SHT3x(bus, clock=clock)
    bus.action = lambda: bus.inject(0x44, BusFault(errno=errno.EIO))
    with pytest.raises(BusError) as failure:
        driver.read()
    assert failure.value.errno == errno.EIO


def test_bad_crc_is_a_checksum_error_then_recovers(rig: Rig) -> None:
    rig.sim.corrupt_crc = 1
    with pytest.raises(ChecksumError, match="CRC mismatch in word 0"):
        rig.driver.read()
    rig.sim.corrupt_crc = 2
    with pytest.raises(ChecksumError):  # the temperature word is fine, the humidity word is not
        rig.driver.read()
    assert 25 < rig.driver.read()["relative_humidity_pct"] < 65


def test_absent_chip() -> None:
    with pytest.raises(ChipNotFoundError, match="0x44") as failure:
        SHT3x(SimulatedSMBus(), clock=ManualClock())
    assert not isinstance(failure.value, WrongChipError)
    assert isinstance(failure.value.__cause__, BusError)
    assert failure.value.__cause__.errno == errno.EREMOTEIO


def test_a_crc_error_on_the_start_up_status_is_the_bus_not_a_wrong_chip() -> None:
    clock = ManualClock()
    bus = SimulatedSMBus()
    bus.attach(SimulatedSHT3x(0x44, clock=clock, seed=2, corrupt_crc=1))
    driver = SHT3x(bus, clock=clock)  # the noisy first status read is read again
    assert 10 < driver.read()["temperature_c"] < 35
    bus = SimulatedSMBus()
    bus.attach(SimulatedSHT3x(0x44, clock=clock, seed=2, corrupt_crc=3))
    with pytest.raises(ChecksumError, match="status register: CRC mismatch") as failure:
        SHT3x(bus, clock=clock)  # noise every time: an integrity error, not another chip
    assert not isinstance(failure.value, ChipNotFoundError)


def test_wrong_chip() -> None:
    clock = ManualClock()
    bus = SimulatedSMBus()
    other = RegisterDevice(0x44, clock=clock)  # e.g. an INA219 strapped to 0x44
    other.registers[:] = bytes(range(256))
    bus.attach(other)
    with pytest.raises(WrongChipError, match="CRC"):
        SHT3x(bus, clock=clock)


def test_stuck_measurement_times_out_then_recovers(rig: Rig) -> None:
    rig.sim.stuck_busy = True
    started = rig.clock.monotonic()
    with pytest.raises(SensorTimeoutError, match="no measurement"):
        rig.driver.read()
    assert 0.06 < rig.clock.monotonic() - started < 0.08
    rig.sim.stuck_busy = False
    assert 15 < rig.driver.read()["temperature_c"] < 27


# -- 5. identify() ------------------------------------------------------------------------------------


def test_identify_recognises_the_chip_without_changing_it() -> None:
    clock = ManualClock()
    bus = SimulatedSMBus()
    sim = SimulatedSHT3x(0x45, clock=clock, seed=1)
    bus.attach(sim)
    assert identify(bus, 0x45) == "SHT3x (status 0x8010)"
    assert sim.commands == [0xF32D]
    assert sim.status_word() == 0x8010


def test_identify_returns_none_for_an_empty_address_or_another_chip() -> None:
    clock = ManualClock()
    bus = SimulatedSMBus()
    bus.attach(SimulatedADS1115(0x48, clock=clock, seed=1))
    other = RegisterDevice(0x45, clock=clock)
    other.registers[:] = bytes([0xFF] * 256)
    bus.attach(other)
    assert identify(bus, 0x44) is None
    assert identify(bus, 0x45) is None
    assert identify(bus, 0x48) is None


def test_driver_spec() -> None:
    assert DRIVER.name == "sht3x"
    assert DRIVER.addresses == (0x44, 0x45)
    assert [q.name for q in DRIVER.quantities] == ["temperature_c", "relative_humidity_pct"]
    assert DRIVER.options is Options
    sim = SimulatedSHT3x(0x45, clock=ManualClock(), seed=3)
    assert isinstance(sim, SimulatedSHT3x) and sim.address == 0x45
    assert set(sim.signals) == {q.name for q in DRIVER.quantities}
