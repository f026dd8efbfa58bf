"""ADS1115 driver and simulator tests (TI datasheet SBAS444, ADS111x).

The chip sends no checksum, so there is no ChecksumError case here; a Config word that
changes under a conversion is the integrity check it does get.
"""

from __future__ import annotations

import dataclasses
import errno
import inspect
import logging
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st
from smbus2 import i2c_msg

from edge_drivers.ads1115 import (
    ADS1115,
    COMP_QUE,
    DATA_RATES,
    DR,
    DRIVER,
    FSR_CODES,
    MODE,
    MUX,
    MUX_INPUTS,
    PGA,
    PGA_FSR,
    ChannelScaling,
    Options,
    code_to_volts,
    config_word,
    identify,
)
from edge_drivers.clock import ManualClock
from edge_drivers.errors import (
    BusError,
    ChipNotFoundError,
    DataIntegrityError,
    MalformedDataError,
    SensorTimeoutError,
    WrongChipError,
)
from edge_drivers.sim.ads1115 import SimulatedADS1115
from edge_drivers.sim.i2c_bus import BusFault, SimulatedI2CDevice, SimulatedSMBus
from edge_drivers.sim.sht3x import SimulatedSHT3x
from edge_drivers.sim.signals import Signal

EPS = 1e-9
LEVEL_LOOP = {
    "channel": 0,
    "quantity": "water_level_m",
    "input_min": 0.6,  # 4 mA x 150 ohm
    "input_max": 3.0,  # 20 mA x 150 ohm
    "output_min": 0.0,
    "output_max": 5.0,
}


class Rig:
    def __init__(self, seed: int = 11, **options: object) -> None:
        self.clock = ManualClock()
        self.bus = SimulatedSMBus(seed=seed)
        self.sim = SimulatedADS1115(0x48, clock=self.clock, seed=seed)
        self.bus.attach(self.sim)
        self.driver = ADS1115(self.bus, clock=self.clock, **options)  # type: ignore[arg-type]

    def config_writes(self) -> list[int]:
        return [(w[1] << 8) | w[2] for w in self.sim.writes if len(w) == 3 and w[0] == 0x01]


@pytest.fixture
def rig() -> Rig:
    return Rig()


# -- 1. Datasheet worked examples on a register fake written here -------------------------------


class RegisterFake:
    """Four 16-bit registers, stored as MSB, LSB byte pairs as the chip sends them.

    It offers only the I2C block calls: a driver reaching for the SMBus word calls
    (LSB first) fails here.  Conversions finish at once (Config always reads OS = 1).
    """

    def __init__(self, conversion: int) -> None:
        self.regs = {
            0: [conversion >> 8, conversion & 0xFF],
            1: [0x85, 0x83],
            2: [0x80, 0x00],
            3: [0x7F, 0xFF],
        }
        self.writes: list[tuple[int, list[int]]] = []

    def write_i2c_block_data(
        self, addr: int, register: int, data: Sequence[int], force: bool | None = None
    ) -> None:
        assert addr == 0x48
        self.writes.append((register, list(data)))
        if register != 0:
            self.regs[register] = list(data)

    def read_i2c_block_data(
        self, addr: int, register: int, length: int, force: bool | None = None
    ) -> list[int]:
        assert (addr, length) == (0x48, 2)
        msb, lsb = self.regs[register]
        return [msb | 0x80, lsb] if register == 1 else [msb, lsb]


# SBAS444 Table "Full-Scale Range and Corresponding LSB Size" (LSB = FSR / 2^15).
LSB_V = {6.144: 187.5e-6, 4.096: 125e-6, 2.048: 62.5e-6, 1.024: 31.25e-6, 0.512: 15.625e-6, 0.256: 7.8125e-6}
# SBAS444 Table "Ideal Output Code Versus Input Signal": code -> input in LSBs.
IDEAL_CODES = {0x7FFF: 32767, 0x0001: 1, 0x0000: 0, 0xFFFF: -1, 0x8000: -32768}


@pytest.mark.parametrize("fsr", sorted(LSB_V))
@pytest.mark.parametrize("code", sorted(IDEAL_CODES))
def test_output_codes_to_volts(fsr: float, code: int) -> None:
    clock = ManualClock()
    adc = ADS1115(RegisterFake(code), clock=clock, gain=fsr, channels=[0])  # type: ignore[arg-type]
    volts = adc.read_voltage(0)
    assert volts == pytest.approx(IDEAL_CODES[code] * LSB_V[fsr], rel=1e-12, abs=0)
    if abs(IDEAL_CODES[code]) <= 1:
        assert volts == IDEAL_CODES[code] * LSB_V[fsr]  # exact: one LSB is FSR / 2^15


def test_lsb_sizes() -> None:
    assert code_to_volts(0x0001, 4.096) == 125e-6
    assert code_to_volts(0x0001, 2.048) == 62.5e-6


def test_config_word_on_the_wire_msb_first() -> None:
    # AIN0 vs GND, ±4.096 V, 128 SPS, single shot, comparator disabled (SBAS444 Config register):
    #   OS=1 | MUX=100 | PGA=001 | MODE=1 | DR=100 | COMP_MODE=0 | COMP_POL=0 | COMP_LAT=0 | COMP_QUE=11
    #   1     100       001       1        100      0             0            0            11
    #   = 1100 0011 1000 0011 = 0xC383
    fake = RegisterFake(0x4000)  # half of +FS
    adc = ADS1115(fake, clock=ManualClock(), channels=[0])  # type: ignore[arg-type]
    # Start-up: Lo_thresh 0x8000 -> 0x800F probe and back, then the power-down Config (OS=0): 0x4383.
    assert fake.writes == [(2, [0x80, 0x0F]), (2, [0x80, 0x00]), (1, [0x43, 0x83])]
    fake.writes.clear()
    assert adc.read_voltage(0) == 2.048  # 0x4000 read MSB first; LSB first it would be 0x0040
    assert fake.writes == [(1, [0xC3, 0x83])]


@pytest.mark.parametrize(
    ("channel", "fsr", "rate", "word"),
    [
        (0, 4.096, 128, 0xC383),
        (3, 2.048, 860, 0xF5E3),  # 1 111 010 1 111 0 0 0 11
        (1, 6.144, 8, 0xD103),  # 1 101 000 1 000 0 0 0 11
        (2, 0.256, 475, 0xEBC3),  # 1 110 101 1 110 0 0 0 11
    ],
)
def test_config_words(channel: int, fsr: float, rate: int, word: int) -> None:
    assert config_word(channel, fsr, rate, start=True) == word
    assert config_word(channel, fsr, rate, start=False) == word & 0x7FFF


# -- 2. Pure functions ------------------------------------------------------------------------------


@given(st.sampled_from(range(4)), st.sampled_from(sorted(FSR_CODES)), st.sampled_from(DATA_RATES))
def test_config_word_fields_round_trip(channel: int, fsr: float, rate: int) -> None:
    word = config_word(channel, fsr, rate, start=True)
    assert MUX_INPUTS[MUX.decode(word)] == (channel, None)
    assert PGA_FSR[PGA.decode(word)] == fsr
    assert DATA_RATES[DR.decode(word)] == rate
    assert MODE.decode(word) == 1 and COMP_QUE.decode(word) == 0b11


@given(st.integers(0, 0xFFFE), st.sampled_from(sorted(FSR_CODES)))
def test_codes_are_monotonic_and_within_full_scale(raw: int, fsr: float) -> None:
    def signed(r: int) -> int:
        return r - 0x10000 if r & 0x8000 else r

    neighbour = raw + 1
    volts, next_volts = code_to_volts(raw, fsr), code_to_volts(neighbour, fsr)
    assert -fsr <= volts < fsr
    assert (next_volts > volts) == (signed(neighbour) > signed(raw))


def test_scaling_of_a_current_loop() -> None:
    loop = ChannelScaling(**LEVEL_LOOP)
    assert loop.scale(0.6) == 0.0
    assert loop.scale(1.8) == pytest.approx(2.5)
    assert loop.scale(3.0) == 5.0
    # NAMUR NE 43 band by default: 3.8 mA .. 20.5 mA on 150 ohm.
    assert loop.accepted_range() == pytest.approx((0.57, 3.075))
    assert loop.scale(0.58) == pytest.approx(-5 / 120)  # a little under 4 mA: reported as measured
    assert loop.scale(0.56) is None  # below 3.8 mA: broken loop / fault
    assert loop.scale(3.1) is None  # above 20.5 mA: transmitter fault
    clamped = ChannelScaling(**{**LEVEL_LOOP, "clamp": True})
    assert clamped.scale(0.58) == 0.0
    assert clamped.scale(3.07) == 5.0
    assert clamped.scale(0.0) is None  # clamping never hides a wire break


def test_inverted_output_range() -> None:
    depth = ChannelScaling(**{**LEVEL_LOOP, "quantity": "depth_m", "output_min": 5.0, "output_max": 0.0})
    assert depth.scale(0.6) == 5.0
    clamped = dataclasses.replace(depth, clamp=True)
    assert clamped.scale(3.05) == 0.0


def test_options_model_matches_the_constructor() -> None:
    params = inspect.signature(ADS1115).parameters
    keyword_options = {n: p.default for n, p in params.items() if p.kind is p.KEYWORD_ONLY and n != "clock"}
    assert keyword_options == dataclasses.asdict(Options())
    assert all(field.metadata.get("description") for field in dataclasses.fields(Options))
    assert all(field.metadata.get("description") for field in dataclasses.fields(ChannelScaling))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"gain": 3.3}, "gain"),
        ({"data_rate": 100}, "data_rate"),
        ({"channels": [4]}, "channels"),
        ({"channels": []}, "channels"),
        ({"channels": [1, 1]}, "channels"),
        ({"scaling": [{**LEVEL_LOOP, "quantity": "WaterLevel"}]}, "quantity"),
        ({"scaling": [{**LEVEL_LOOP, "quantity": "ain1_voltage_v"}]}, "quantity"),
        ({"scaling": [{**LEVEL_LOOP, "input_max": 0.6}]}, "input_max"),
        ({"scaling": [{**LEVEL_LOOP, "output_max": 0.0}]}, "output_max"),
        ({"scaling": [{**LEVEL_LOOP, "unit": "m"}]}, "unit"),
        ({"scaling": [LEVEL_LOOP, LEVEL_LOOP]}, "once"),
        ({"channels": [1, 2], "scaling": [LEVEL_LOOP]}, "channel 0"),
    ],
)
def test_bad_options_name_the_option(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ADS1115(SimulatedSMBus(), clock=ManualClock(), **options)  # type: ignore[arg-type]


def test_option_errors_read_as_the_script_wrote_them() -> None:
    """A ValueError naming the option, its value and the rule; an unknown keyword too."""
    with pytest.raises(ValueError, match=r"^ads1115 option gain=2\.5: must be one of 6\.144, 4\.096, "):
        Options(gain=2.5)
    with pytest.raises(ValueError, match=r"^ads1115 option gian: unknown option \(did you mean 'gain'\?\)$"):
        Options(gian=2.5)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match=r"^ads1115 option scaling\[0\]\.unit: unknown option"):
        Options(scaling=({**LEVEL_LOOP, "unit": "m"},))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^ads1115 option scaling\[0\]\.output_max: required but missing$"):
        ADS1115(
            SimulatedSMBus(),
            clock=ManualClock(),
            scaling=[{"channel": 0, "quantity": "x_v", "input_min": 0, "input_max": 1, "output_min": 0}],
        )
    with pytest.raises(ValueError, match=r"^ads1115 options?"):
        Options(channels=(0, 1), scaling=[LEVEL_LOOP, LEVEL_LOOP])  # type: ignore[list-item]


# -- 3. Against the simulator ----------------------------------------------------------------------


def test_plausible_voltages(rig: Rig) -> None:
    reading = rig.driver.read()
    assert list(reading) == ["ain0_voltage_v", "ain1_voltage_v", "ain2_voltage_v", "ain3_voltage_v"]
    assert 1.2 < reading["ain0_voltage_v"] < 2.4
    assert 1.6 < reading["ain1_voltage_v"] < 1.7
    assert 2.9 < reading["ain2_voltage_v"] < 3.1
    assert -0.0005 < reading["ain3_voltage_v"] < 0  # grounded: a small negative offset


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


def test_grounded_input_gives_small_negative_codes() -> None:
    rig = Rig(gain=0.256, channels=[3])
    volts = rig.driver.read_voltage(3)
    codes = volts / 7.8125e-6
    assert -20 <= codes < 0 and codes == int(codes)


def test_values_change_over_time(rig: Rig) -> None:
    seen = []
    for _ in range(5):
        seen.append(rig.driver.read()["ain0_voltage_v"])
        rig.clock.advance(300)
    assert len(set(seen)) == len(seen)
    assert max(seen) - min(seen) > 0.01


def test_gain_option_and_saturation(caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig(gain=2.048, channels=[1, 2])
    with caplog.at_level(logging.WARNING):
        reading = rig.driver.read()
        rig.driver.read()
    assert PGA_FSR[PGA.decode(rig.config_writes()[-1])] == 2.048
    assert 1.6 < reading["ain1_voltage_v"] < 1.7
    assert "ain2_voltage_v" not in reading  # 3.0 V is beyond ±2.048 V: a limit, not a value
    assert rig.driver.read_voltage(2) == 2.048 * 32767 / 32768
    assert [r.levelname for r in caplog.records] == ["WARNING"]  # logged once, not at every read
    assert "larger gain" in caplog.text


@pytest.mark.parametrize("rate", [8, 128, 860])
def test_data_rate_option(rate: int) -> None:
    rig = Rig(data_rate=rate, channels=[1])
    started = rig.clock.monotonic()
    rig.driver.read_voltage(1)
    elapsed = rig.clock.monotonic() - started
    assert DATA_RATES[DR.decode(rig.config_writes()[-1])] == rate
    assert 1.0 / rate < elapsed < 1.1 / rate + 0.001  # one conversion, slept once, no busy polling


def test_slow_oscillator_is_polled(rig: Rig) -> None:
    rig.sim.rate_error = 0.3  # beyond the ±10 % data-rate tolerance
    reads_before = rig.bus.transactions
    assert 1.6 < rig.driver.read_voltage(1) < 1.7
    assert rig.bus.transactions - reads_before > 3  # had to poll OS


def test_simulator_early_read_returns_the_previous_result() -> None:
    clock = ManualClock()
    bus = SimulatedSMBus()
    bus.attach(SimulatedADS1115(0x48, clock=clock, seed=1))
    bus.write_i2c_block_data(0x48, 0x01, [0xE3, 0x83])  # start: AIN2, ±4.096 V, 128 SPS
    config = bus.read_i2c_block_data(0x48, 0x01, 2)
    assert config == [0x63, 0x83]  # OS reads 0: converting
    assert bus.read_i2c_block_data(0x48, 0x00, 2) == [0, 0]  # still the reset value
    bus.write_i2c_block_data(0x48, 0x01, [0xD3, 0x83])  # OS=1 during a conversion: no effect...
    clock.advance(1 / 128)
    assert bus.read_i2c_block_data(0x48, 0x01, 2)[0] & 0x80  # done
    raw = bus.read_i2c_block_data(0x48, 0x00, 2)
    assert 2.9 < code_to_volts((raw[0] << 8) | raw[1], 4.096) < 3.1  # ...it converted AIN2
    assert bus.read_word_data(0x48, 0x00) == (raw[1] << 8) | raw[0]  # the SMBus word pitfall


def test_simulator_continuous_mode() -> None:
    clock = ManualClock()
    bus = SimulatedSMBus()
    bus.attach(SimulatedADS1115(0x48, clock=clock, seed=1))
    bus.write_i2c_block_data(0x48, 0x01, [0x52, 0x83])  # AIN1, ±4.096 V, continuous, 128 SPS
    values = []
    for _ in range(3):
        clock.advance(1 / 128)
        assert not bus.read_i2c_block_data(0x48, 0x01, 2)[0] & 0x80  # always converting
        values.append(bytes(bus.read_i2c_block_data(0x48, 0x00, 2)))
    assert len(set(values)) > 1
    assert all(1.6 < code_to_volts(int.from_bytes(v, "big"), 4.096) < 1.7 for v in values)


def test_driver_waits_out_a_chip_left_in_continuous_mode() -> None:
    clock = ManualClock()
    bus = SimulatedSMBus()
    bus.attach(SimulatedADS1115(0x48, clock=clock, seed=1))
    bus.write_i2c_block_data(0x48, 0x01, [0x62, 0x03])  # AIN2 (3.0 V), continuous, 8 SPS
    clock.advance(0.2)  # another program left it running, 75 ms into a conversion
    adc = ADS1115(bus, clock=clock, channels=[1])
    # Started too early, the AIN1 conversion would be ignored and AIN2's result returned.
    assert 1.6 < adc.read_voltage(1) < 1.7


def test_simulator_general_call_reset(rig: Rig) -> None:
    rig.driver.read()
    rig.bus.i2c_rdwr(i2c_msg.write(0x00, [0x06]))
    assert rig.bus.read_i2c_block_data(0x48, 0x01, 2) == [0x85, 0x83]
    assert rig.bus.read_i2c_block_data(0x48, 0x00, 2) == [0x00, 0x00]


def test_scaled_quantity() -> None:
    rig = Rig(scaling=[LEVEL_LOOP])
    reading = rig.driver.read()
    assert reading["water_level_m"] == pytest.approx((reading["ain0_voltage_v"] - 0.6) / 2.4 * 5.0)
    assert list(reading)[-1] == "water_level_m"


def test_options_from_a_config_table() -> None:
    table = {"channels": [0, 2], "gain": 4.096, "data_rate": 250, "scaling": [LEVEL_LOOP]}
    clock = ManualClock()
    bus = SimulatedSMBus()
    bus.attach(SimulatedADS1115(0x48, clock=clock, seed=4))
    adc = ADS1115(bus, 0x48, clock=clock, **dataclasses.asdict(Options(**table)))
    assert set(adc.read()) == {"ain0_voltage_v", "ain2_voltage_v", "water_level_m"}


def test_broken_loop_leaves_the_level_out(caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig(scaling=[LEVEL_LOOP])
    loop = rig.sim.signals["ain0_voltage_v"]
    rig.sim.signals["ain0_voltage_v"] = Signal(0.0, clock=rig.clock)  # wire cut: 0 mA
    with caplog.at_level(logging.INFO):
        first = rig.driver.read()
        second = rig.driver.read()
        rig.sim.signals["ain0_voltage_v"] = loop
        healed = rig.driver.read()
    for reading in (first, second):
        assert "water_level_m" not in reading
        assert abs(reading["ain0_voltage_v"]) < 0.001  # the voltage is still reported
    assert "water_level_m" in healed
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO"]
    assert "broken loop" in caplog.records[0].getMessage()


# -- 4. Fault injection ------------------------------------------------------------------------------


def test_nack_is_a_bus_error_keeping_errno_then_recovers(rig: Rig) -> None:
    rig.bus.inject(0x48)
    with pytest.raises(BusError, match="Config") as failure:
        rig.driver.read()
    assert failure.value.errno == errno.EREMOTEIO
    assert isinstance(failure.value.__cause__, OSError)
    assert len(rig.driver.read()) == 4


def test_eio_is_a_bus_error(rig: Rig) -> None:
    rig.bus.inject(0x48, BusFault(errno=errno.EIO))
    with pytest.raises(BusError) as failure:
        rig.driver.read_voltage(0)
    assert failure.value.errno == errno.EIO


def test_conversion_that_never_ends_times_out_then_recovers(rig: Rig) -> None:
    rig.sim.stuck_busy = True
    started = rig.clock.monotonic()
    with pytest.raises(SensorTimeoutError, match="AIN1 conversion still running"):
        rig.driver.read_voltage(1)
    assert rig.clock.monotonic() - started == pytest.approx(2 / 128 + 0.01, abs=0.0015)
    rig.sim.stuck_busy = False
    assert 1.6 < rig.driver.read_voltage(1) < 1.7


class ResettingBus(SimulatedSMBus):
    """Sends an I2C general-call reset right after the next conversion start."""

    armed = False

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: Sequence[int], force: bool | None = None
    ) -> None:
        super().write_i2c_block_data(i2c_addr, register, data, force)
        if self.armed and register == 0x01 and data[0] & 0x80:
            self.armed = False
            self.i2c_rdwr(i2c_msg.write(0x00, [0x06]))


def test_reset_during_a_conversion_is_not_returned_as_a_value() -> None:
    clock = ManualClock()
    bus = ResettingBus()
    bus.attach(SimulatedADS1115(0x48, clock=clock, seed=1))
    adc = ADS1115(bus, clock=clock)
    bus.armed = True
    with pytest.raises(DataIntegrityError, match="changed to 0x8583"):
        adc.read_voltage(2)
    assert 2.9 < adc.read_voltage(2) < 3.1


def test_short_read_is_malformed() -> None:
    class ShortFake(RegisterFake):
        def read_i2c_block_data(
            self, addr: int, register: int, length: int, force: bool | None = None
        ) -> list[int]:
            data = super().read_i2c_block_data(addr, register, length)
            return data[:1] if register == 0 else data  # the Conversion register comes up short

    adc = ADS1115(ShortFake(0x1234), clock=ManualClock())  # type: ignore[arg-type]
    with pytest.raises(MalformedDataError, match="1 bytes"):
        adc.read_voltage(0)


def test_absent_chip() -> None:
    with pytest.raises(ChipNotFoundError, match="0x49") as failure:
        ADS1115(SimulatedSMBus(), 0x49, clock=ManualClock())
    assert not isinstance(failure.value, WrongChipError)
    assert isinstance(failure.value.__cause__, BusError)
    assert failure.value.__cause__.errno == errno.EREMOTEIO


class SimulatedADS1015(SimulatedADS1115):
    """The 12-bit sibling: same registers, but the 4 low threshold bits are read-only."""

    def write(self, data: bytes) -> None:
        super().write(data)
        if len(data) >= 3 and self.pointer in (0x02, 0x03):
            self.registers[self.pointer] = (self.registers[self.pointer] & 0xFFF0) | (
                0x0 if self.pointer == 0x02 else 0xF
            )


class TMP102Like(SimulatedI2CDevice):
    """A TMP102 temperature sensor, also found at 0x48: 12-bit limits, partly read-only config."""

    def __init__(self, address: int) -> None:
        super().__init__(address)
        self.pointer = 0
        self.registers = {0: 0x1900, 1: 0x60A0, 2: 0x4B00, 3: 0x5000}

    def write(self, data: bytes) -> None:
        self.pointer = data[0] & 0x03
        if len(data) >= 3 and self.pointer:
            word = (data[1] << 8) | data[2]
            self.registers[self.pointer] = (word & 0x1FE0) | 0x60A0 if self.pointer == 1 else word & 0xFFF0

    def read(self, length: int) -> bytes:
        return self.registers[self.pointer].to_bytes(2, "big")[:length]


@pytest.mark.parametrize("chip", [SimulatedADS1015(0x48, clock=ManualClock()), TMP102Like(0x48)])
def test_wrong_chip(chip: SimulatedI2CDevice) -> None:
    bus = SimulatedSMBus()
    bus.attach(chip)
    with pytest.raises(WrongChipError, match="ADS1015"):
        ADS1115(bus, clock=ManualClock())
    assert (bus.read_i2c_block_data(0x48, 0x02, 2)[0]) in (0x80, 0x4B)  # threshold put back


def test_config_that_does_not_read_back_is_a_wrong_chip() -> None:
    class StuckConfig(SimulatedADS1115):
        def write(self, data: bytes) -> None:
            super().write(data)
            self.registers[0x01] = 0x0583

    bus = SimulatedSMBus()
    bus.attach(StuckConfig(0x48, clock=ManualClock()))
    with pytest.raises(WrongChipError, match="Config read back 0x8583"):
        ADS1115(bus, clock=ManualClock())


def test_self_test(rig: Rig) -> None:
    result = rig.driver.self_test()
    assert result.passed, result.detail
    assert 1.2 < result.measurements["ain0_voltage_v"] < 2.4
    assert result.measurements["conversion_s"] < 1.1 / 128 + 0.001
    writes = rig.config_writes()
    assert writes[-3:-1] == [0x4383 ^ 0x7EFC, 0x4383]  # flipped fields, then the idle word back


def test_self_test_reports_a_stuck_conversion(rig: Rig) -> None:
    rig.sim.stuck_busy = True
    result = rig.driver.self_test()
    assert not result.passed and "still running" in result.detail


# -- 5. identify() ------------------------------------------------------------------------------------


def test_identify_is_a_read_only_heuristic() -> None:
    bus = SimulatedSMBus()
    sim = SimulatedADS1115(0x4A, clock=ManualClock(), seed=1)
    bus.attach(sim)
    found = identify(bus, 0x4A)
    assert found is not None and found.startswith("ADS1115/ADS1015 (probable") and "0x8583" in found
    assert all(len(w) == 1 for w in sim.writes)  # only pointer writes


def test_identify_after_the_driver_ran(rig: Rig) -> None:
    rig.driver.read()
    found = identify(rig.bus, 0x48)
    assert found is not None and "0xF383" in found  # the last conversion: AIN3


def test_identify_returns_none_for_an_empty_address_or_another_chip() -> None:
    bus = SimulatedSMBus()
    bus.attach(TMP102Like(0x49))
    bus.attach(SimulatedSHT3x(0x44, clock=ManualClock(), seed=1))
    assert identify(bus, 0x48) is None
    assert identify(bus, 0x49) is None
    assert identify(bus, 0x44) is None


def test_driver_spec() -> None:
    assert DRIVER.name == "ads1115"
    assert DRIVER.addresses == (0x48, 0x49, 0x4A, 0x4B)
    assert DRIVER.options is Options
    sim = SimulatedADS1115(0x4B, clock=ManualClock(), seed=3)
    assert isinstance(sim, SimulatedADS1115) and sim.address == 0x4B
    assert set(sim.signals) == {q.name for q in DRIVER.quantities}
