"""Tests of the BME280/BMP280 driver (drivers/edge_drivers/bme280.py) and its simulator
(drivers/edge_drivers/sim/bme280.py)."""

from __future__ import annotations

import dataclasses
import errno
import inspect
import struct
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_drivers import bme280
from edge_drivers.bme280 import (
    BME280,
    DRIVER,
    BitField,
    Calibration,
    Options,
    Reg,
    calibration_problem,
    identify,
    measurement_time_s,
    parse_data,
)
from edge_drivers.clock import ManualClock
from edge_drivers.errors import (
    BusError,
    ChipNotFoundError,
    ChipResetError,
    MalformedDataError,
    NotReadyError,
    SensorTimeoutError,
    WrongChipError,
)
from edge_drivers.sim.bme280 import DEFAULT_CALIBRATION, SimulatedBME280, calibration_registers
from edge_drivers.sim.i2c_bus import BusFault, RegisterDevice, SimulatedSMBus

ADDRESS = 0x76


# -- a bare register-array fake (no timing, no reset, mode bits never return to 00) ---------


class RegisterArrayBus:
    """One chip's 256 registers and nothing else; logs every access."""

    def __init__(self, registers: dict[int, int], *, fail_writes: int | None = None) -> None:
        self.regs = bytearray(256)
        for register, value in registers.items():
            self.regs[register] = value
        self.reads: list[tuple[int, int]] = []
        self.writes: list[tuple[int, int]] = []
        self.fail_writes = fail_writes

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        self._address(i2c_addr)
        self.reads.append((register, 1))
        return self.regs[register]

    def write_byte_data(self, i2c_addr: int, register: int, value: int, force: bool | None = None) -> None:
        self._address(i2c_addr)
        if self.fail_writes is not None:
            raise OSError(self.fail_writes, "injected")
        self.writes.append((register, value))
        self.regs[register] = value

    def read_i2c_block_data(
        self, i2c_addr: int, register: int, length: int, force: bool | None = None
    ) -> list[int]:
        self._address(i2c_addr)
        self.reads.append((register, length))
        return list(self.regs[register : register + length])

    @staticmethod
    def _address(i2c_addr: int) -> None:
        if i2c_addr != ADDRESS:
            raise OSError(errno.EREMOTEIO, "no ACK")


def word20(adc: int) -> list[int]:
    return [adc >> 12, (adc >> 4) & 0xFF, (adc & 0x0F) << 4]


def load(regs: dict[int, int], start: int, data: Sequence[int]) -> None:
    for offset, value in enumerate(data):
        regs[start + offset] = value


# BMP280 datasheet BST-BMP280-DS001 rev 1.23 §3.12, the worked compensation example (the
# BME280 shares these T/P registers and formulas): dig_T1..dig_P9, adc_T = 519888, adc_P = 415148.
DS_EXAMPLE_TP = struct.pack(
    "<HhhHhhhhhhhh", 27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000
) + bytes([0x00, 0x00])
DS_EXAMPLE = Calibration.from_registers(DS_EXAMPLE_TP)

# A real BME280's calibration and raw words, from pimoroni/bme280-python tests/calibration.py
# and tests/test_compensation.py; pimoroni's double-precision results (computed with t_fine
# kept as a float) are an independent cross-check of the integer set.
PIMORONI_TP = struct.pack(
    "<HhhHhhhhhhhhBB", 28009, 25654, 50, 39145, -10750, 3024, 5667, -120, -7, 15500, -14600, 6000, 0, 75
)
# dig_H2 = 376, dig_H3 = 0, dig_H4 = 286 = 0x11E, dig_H5 = 50 = 0x032, dig_H6 = 30:
# 0xE4 = H4[11:4], 0xE5 = H5[3:0] << 4 | H4[3:0], 0xE6 = H5[11:4].
PIMORONI_H = struct.pack("<hB", 376, 0) + bytes([0x11, 0x2E, 0x03]) + struct.pack("<b", 30)
PIMORONI_ADC = {"t": 529191, "p": 326816, "h": 30281}
PIMORONI_DOUBLE = {
    "temperature_c": 24.7894877676,
    "pressure_pa": 100661.517564,
    "relative_humidity_pct": 68.66996648709039,
}


def ds_double(cal: Calibration, adc_t: int, adc_p: int, adc_h: int) -> tuple[float, float, float]:
    """The datasheet's double-precision compensation (BME280 DS §8.1), as an independent reference."""
    v1 = (adc_t / 16384.0 - cal.t1 / 1024.0) * cal.t2
    v2 = (adc_t / 131072.0 - cal.t1 / 8192.0) ** 2 * cal.t3
    t_fine = int(v1 + v2)
    temperature = (v1 + v2) / 5120.0
    v1 = t_fine / 2.0 - 64000.0
    v2 = v1 * v1 * cal.p6 / 32768.0 + v1 * cal.p5 * 2.0
    v2 = v2 / 4.0 + cal.p4 * 65536.0
    v1 = (cal.p3 * v1 * v1 / 524288.0 + cal.p2 * v1) / 524288.0
    v1 = (1.0 + v1 / 32768.0) * cal.p1
    p = (1048576.0 - adc_p - v2 / 4096.0) * 6250.0 / v1
    p += (cal.p9 * p * p / 2147483648.0 + p * cal.p8 / 32768.0 + cal.p7) / 16.0
    h = t_fine - 76800.0
    h = (adc_h - (cal.h4 * 64.0 + cal.h5 / 16384.0 * h)) * (
        cal.h2 / 65536.0 * (1.0 + cal.h6 / 67108864.0 * h * (1.0 + cal.h3 / 67108864.0 * h))
    )
    h = h * (1.0 - cal.h1 * h / 524288.0)
    return temperature, p, min(max(h, 0.0), 100.0)


# -- 1. datasheet worked examples on the register-array fake -------------------------------


def test_bmp280_datasheet_example_through_the_driver() -> None:
    regs: dict[int, int] = {Reg.CHIP_ID: 0x58}
    load(regs, Reg.CALIB_TP, DS_EXAMPLE_TP)
    load(regs, Reg.DATA, word20(415148) + word20(519888))
    bus = RegisterArrayBus(regs)
    sensor = BME280(bus, clock=ManualClock())

    # DS: t_fine = 128422, T = 25.08 °C, p ≈ 100653 Pa.  The int64 formula gives exactly
    # p = 25767233 in Q24.8 = 100653.254 Pa (the DS double formula gives 100653.258 Pa).
    assert DS_EXAMPLE.t_fine(519888) == 128422
    assert ds_double(DS_EXAMPLE, 519888, 415148, 0)[:2] == pytest.approx((25.0825, 100653.258), abs=1e-3)
    assert sensor.read() == {"temperature_c": 25.08, "pressure_pa": 25767233 / 256}
    assert sensor.model == "BMP280" and not sensor.has_humidity
    # A BMP280: no ctrl_hum write, no humidity calibration or data read.
    assert bus.writes == [(0xE0, 0xB6), (0xF4, 0x24), (0xF5, 0x00), (0xF4, 0x25)]
    assert (Reg.CALIB_H, 7) not in bus.reads
    assert bus.reads[-1] == (Reg.STATUS, 10)  # status, ctrl_meas, config + T/P data in one burst


def test_bme280_real_calibration_example_through_the_driver() -> None:
    regs: dict[int, int] = {Reg.CHIP_ID: 0x60}
    load(regs, Reg.CALIB_TP, PIMORONI_TP)
    load(regs, Reg.CALIB_H, PIMORONI_H)
    load(regs, Reg.DATA, word20(PIMORONI_ADC["p"]) + word20(PIMORONI_ADC["t"]) + [30281 >> 8, 30281 & 0xFF])
    bus = RegisterArrayBus(regs)
    values = BME280(bus, clock=ManualClock()).read()

    # Exact integer-set results: t_fine 126911 -> 2479; p 25769253 Q24.8; h 70317 Q22.10.
    assert values == {
        "temperature_c": 24.79,
        "pressure_pa": 25769253 / 256,
        "relative_humidity_pct": 70317 / 1024,
    }
    assert bus.writes == [(0xE0, 0xB6), (0xF2, 0x01), (0xF4, 0x24), (0xF5, 0x00), (0xF4, 0x25)]
    for name, tolerance in (("temperature_c", 0.01), ("pressure_pa", 1.0), ("relative_humidity_pct", 0.01)):
        assert values[name] == pytest.approx(PIMORONI_DOUBLE[name], abs=tolerance)


# -- 2. pure functions: parsing, compensation, timing ---------------------------------------


def test_calibration_parses_the_real_set() -> None:
    assert Calibration.from_registers(PIMORONI_TP, PIMORONI_H) == DEFAULT_CALIBRATION


def test_h4_h5_share_0xe5_nibbles_and_sign_extend() -> None:
    # The classic bug: E5's low nibble belongs to H4, its high nibble to H5, and the sign
    # comes from E4/E6 (12-bit two's complement).
    h = [0x78, 0x01, 0x00, 0x12, 0xA5, 0xFC, 0xE2]
    cal = Calibration.from_registers(PIMORONI_TP, h)
    assert (cal.h2, cal.h3) == (376, 0)
    assert cal.h4 == 0x125  # 0x12 << 4 | 0x5
    assert cal.h5 == -54  # 0xFCA as 12-bit signed
    assert cal.h6 == -30  # 0xE2 as int8
    negative_h4 = Calibration.from_registers(PIMORONI_TP, [0x78, 0x01, 0x00, 0xF0, 0x3F, 0x03, 0x1E])
    assert (negative_h4.h4, negative_h4.h5) == (-241, 0x033)


def test_signed_and_unsigned_words() -> None:
    tp = bytes([0xFF, 0xFF] * 12 + [0x00, 0xFF])
    cal = Calibration.from_registers(tp)
    assert (cal.t1, cal.p1) == (0xFFFF, 0xFFFF)  # unsigned
    assert {cal.t2, cal.t3, cal.p2, cal.p5, cal.p9} == {-1}  # signed
    assert cal.h1 == 0  # no humidity block: a BMP280
    with pytest.raises(ValueError, match="26 calibration bytes"):
        Calibration.from_registers(tp[:25])


h12 = st.integers(-2048, 2047)


@given(
    cal=st.builds(
        Calibration,
        t1=st.integers(0, 0xFFFF), t2=st.integers(-32768, 32767), t3=st.integers(-32768, 32767),
        p1=st.integers(0, 0xFFFF), p2=st.integers(-32768, 32767), p3=st.integers(-32768, 32767),
        p4=st.integers(-32768, 32767), p5=st.integers(-32768, 32767), p6=st.integers(-32768, 32767),
        p7=st.integers(-32768, 32767), p8=st.integers(-32768, 32767), p9=st.integers(-32768, 32767),
        h1=st.integers(0, 255), h2=st.integers(-32768, 32767), h3=st.integers(0, 255),
        h4=h12, h5=h12, h6=st.integers(-128, 127),
    )
)  # fmt: skip
def test_simulator_nvm_encoding_round_trips(cal: Calibration) -> None:
    assert Calibration.from_registers(*calibration_registers(cal)) == cal


def test_c_division_truncates_toward_zero() -> None:
    assert [bme280._c_div(a, b) for a, b in ((7, 2), (-7, 2), (7, -2), (-7, -2))] == [3, -3, -3, 3]


def test_pressure_is_none_where_the_datasheet_avoids_dividing_by_zero() -> None:
    broken = dataclasses.replace(DS_EXAMPLE, p1=0)
    assert broken.pressure_q24_8(415148, 128422) is None


def test_humidity_is_clamped_to_0_and_100_percent() -> None:
    t_fine = DEFAULT_CALIBRATION.t_fine(529191)
    assert DEFAULT_CALIBRATION.humidity_q22_10(0, t_fine) == 0
    assert DEFAULT_CALIBRATION.humidity_q22_10(0xFFFF, t_fine) == 102400


@settings(max_examples=300)
@given(adc_t=st.integers(317320, 725944), adc_p=st.integers(188864, 748682), adc_h=st.integers(0, 37678))
def test_integer_set_agrees_with_the_double_set(adc_t: int, adc_p: int, adc_h: int) -> None:
    # Raw ranges span -40…85 °C, 300…1100 hPa, 0…100 %RH for this calibration.
    cal = DEFAULT_CALIBRATION
    t_fine = cal.t_fine(adc_t)
    pressure = cal.pressure_q24_8(adc_p, t_fine)
    assert pressure is not None
    t, p, h = ds_double(cal, adc_t, adc_p, adc_h)
    assert cal.temperature_centi_c(t_fine) / 100 == pytest.approx(t, abs=0.01)
    assert pressure / 256 == pytest.approx(p, abs=1.0)
    assert cal.humidity_q22_10(adc_h, t_fine) / 1024 == pytest.approx(h, abs=0.02)


@pytest.mark.parametrize(("h4", "h5"), [(286, -50), (-10, 50), (-10, -50)])
@pytest.mark.parametrize("adc_t", [420000, 529191, 600000])
def test_humidity_with_negative_h4_or_h5_matches_the_double_set(h4: int, h5: int, adc_t: int) -> None:
    # No real part at hand has a negative H4/H5; these variants of the real set exercise the
    # signed paths.  Raw humidity words are chosen so the result lies inside 0…100 %RH.
    cal = dataclasses.replace(DEFAULT_CALIBRATION, h4=h4, h5=h5)
    for adc_h in range(2000, 40000, 3000):
        expected = ds_double(cal, adc_t, 400000, adc_h)[2]
        assert cal.humidity_q22_10(adc_h, cal.t_fine(adc_t)) / 1024 == pytest.approx(expected, abs=0.02)


def test_parse_data_splits_20_20_16_bit_words() -> None:
    raw = parse_data([0x65, 0x5A, 0xC0, 0x7E, 0xED, 0x00, 0x76, 0x49])
    assert (raw.adc_p, raw.adc_t, raw.adc_h) == (0x655AC, 0x7EED0, 0x7649)
    assert parse_data([0x65, 0x5A, 0xC0, 0x7E, 0xED, 0x00]).adc_h is None


def test_measurement_time_follows_appendix_b() -> None:
    assert measurement_time_s(1, 1, 1) == pytest.approx(0.0093)  # 1.25 + 2.3 + 2.875 + 2.875 ms
    assert measurement_time_s(16, 16, 16) == pytest.approx(0.1128)
    assert measurement_time_s(1, 1, 0) == pytest.approx(0.006425)  # skipped humidity adds nothing
    assert measurement_time_s(1, 1, 1, maximum=False) == pytest.approx(0.008)


def test_bit_fields() -> None:
    field = BitField(Reg.CTRL_MEAS, 2, 3)
    assert field.put(0xFF, 0b010) == 0b11101011
    assert field.get(0b11101011) == 0b010


def test_calibration_problem_spots_blank_nvm() -> None:
    assert calibration_problem(PIMORONI_TP, PIMORONI_H) is None
    assert "all 0xFF" in str(calibration_problem(bytes([0xFF] * 26), None))
    assert "all 0x00" in str(calibration_problem(PIMORONI_TP, bytes(7)))
    assert "dig_T1" in str(calibration_problem(bytes(2) + PIMORONI_TP[2:], PIMORONI_H))


# -- 3. against the simulator ---------------------------------------------------------------


class RecordingBus(SimulatedSMBus):
    """The simulated bus, logging each transaction as (bytes written, bytes read)."""

    def __init__(self) -> None:
        super().__init__(seed=0)
        self.log: list[tuple[bytes, int]] = []

    def _transfer(self, address: int, out: bytes, read_length: int) -> bytes:
        self.log.append((out, read_length))
        return super()._transfer(address, out, read_length)


def make(
    chip_id: int = 0x60, seed: int = 1, **options: int
) -> tuple[BME280, SimulatedBME280, RecordingBus, ManualClock]:
    clock = ManualClock()
    bus = RecordingBus()
    sim = SimulatedBME280(ADDRESS, clock=clock, seed=seed, chip_id=chip_id)
    bus.attach(sim)
    return BME280(bus, ADDRESS, clock=clock, **options), sim, bus, clock


def quiet(sim: SimulatedBME280) -> None:
    for signal in sim.signals.values():
        signal.noise = 0.0


def test_sim_values_are_plausible_and_change_over_time() -> None:
    sensor, _, _, clock = make()
    first = sensor.read()
    assert set(first) == {"temperature_c", "pressure_pa", "relative_humidity_pct"}
    assert 15 < first["temperature_c"] < 27
    assert 97000 < first["pressure_pa"] < 106000
    assert 20 < first["relative_humidity_pct"] < 70
    clock.advance(120)
    assert sensor.read() != first


def test_sim_is_deterministic_with_a_seed() -> None:
    assert make(seed=7)[0].read() == make(seed=7)[0].read()


@pytest.mark.parametrize(
    ("osr", "t_tol", "p_tol"),
    [(1, 0.01, 1.5), (16, 0.006, 0.3)],  # x1: 16-bit words (2.6 Pa/LSB); x16: 20-bit (0.16 Pa/LSB)
)
def test_driver_reads_back_the_simulated_truth(osr: int, t_tol: float, p_tol: float) -> None:
    sensor, sim, _, clock = make(oversampling_temperature=osr, oversampling_pressure=osr)
    quiet(sim)
    for _ in range(5):
        values = sensor.read()
        truth = {name: signal.true_value() for name, signal in sim.signals.items()}
        assert values["temperature_c"] == pytest.approx(truth["temperature_c"], abs=t_tol)
        assert values["pressure_pa"] == pytest.approx(truth["pressure_pa"], abs=p_tol)
        assert values["relative_humidity_pct"] == pytest.approx(truth["relative_humidity_pct"], abs=0.01)
        clock.advance(30)


@pytest.mark.parametrize(
    ("temperature", "pressure", "humidity"), [(-30.0, 70000.0, 3.0), (60.0, 108000.0, 97.0)]
)
def test_readback_at_the_edges_of_the_range(temperature: float, pressure: float, humidity: float) -> None:
    sensor, sim, _, _ = make(oversampling_pressure=16)
    for name, base in (
        ("temperature_c", temperature),
        ("pressure_pa", pressure),
        ("relative_humidity_pct", humidity),
    ):
        signal = sim.signals[name]
        signal.base, signal.amplitude, signal.walk, signal.noise = base, 0.0, 0.0, 0.0
    values = sensor.read()
    assert values["temperature_c"] == pytest.approx(temperature, abs=0.01)
    assert values["pressure_pa"] == pytest.approx(pressure, abs=0.3)
    assert values["relative_humidity_pct"] == pytest.approx(humidity, abs=0.01)


def test_wire_sequence_at_start_up_and_per_read() -> None:
    sensor, _, bus, clock = make()
    assert bus.log == [
        (b"\xd0", 1),  # chip id
        (b"\xe0\xb6", 0),  # soft reset
        (b"\xf3", 1),  # im_update poll
        (b"\x88", 26),
        (b"\xe1", 7),
        (b"\xf2\x01", 0),  # ctrl_hum x1, before ctrl_meas
        (b"\xf4\x24", 0),  # ctrl_meas: osrs_t x1, osrs_p x1, sleep
        (b"\xf5\x00", 0),  # config: filter off
    ]
    bus.log.clear()
    before = clock.monotonic()
    sensor.read()
    # forced, poll, one burst: control registers (a reset shows there) and data
    assert bus.log == [(b"\xf4\x25", 0), (b"\xf3", 1), (b"\xf2", 13)]
    assert clock.monotonic() - before == pytest.approx(0.0093)  # slept t_meas,max first


def test_options_reach_the_registers() -> None:
    sensor, sim, bus, clock = make(
        oversampling_temperature=2, oversampling_pressure=16, oversampling_humidity=4, iir_filter=8
    )
    writes = [out for out, length in bus.log if length == 0]
    assert writes[-3:] == [b"\xf2\x03", b"\xf4\x54", b"\xf5\x0c"]
    bus.log.clear()
    before = clock.monotonic()
    sensor.read()
    assert bus.log[0] == (b"\xf4\x55", 0)
    assert clock.monotonic() - before == pytest.approx(0.053)  # 1.25 + 4.6 + 37.375 + 9.775 ms
    assert sim.registers[Reg.CONFIG] == 0x0C


def test_skipped_channels_are_left_out() -> None:
    sensor, sim, _, _ = make(oversampling_pressure=0, oversampling_humidity=0)
    assert set(sensor.read()) == {"temperature_c"}
    assert sim.registers[0xF7:0xFA] == b"\x80\x00\x00"
    assert sim.registers[0xFD:0xFF] == b"\x80\x00"


def test_x1_oversampling_gives_16_bit_words_and_x16_gives_20() -> None:
    _, sim, bus, _ = make()
    xlsb_x1 = set()
    for _ in range(8):
        bus.write_byte_data(ADDRESS, Reg.CTRL_MEAS, 0x25)
        sim.clock.sleep(0.01)
        xlsb_x1 |= {bus.read_byte_data(ADDRESS, 0xF9), bus.read_byte_data(ADDRESS, 0xFC)}
    assert xlsb_x1 == {0x00}
    xlsb_x16 = set()
    for _ in range(8):
        bus.write_byte_data(ADDRESS, Reg.CTRL_MEAS, 0xB5)
        sim.clock.sleep(0.12)
        xlsb_x16 |= {bus.read_byte_data(ADDRESS, 0xF9), bus.read_byte_data(ADDRESS, 0xFC)}
    assert xlsb_x16 - {0x00}


@pytest.mark.parametrize(("coefficient", "low", "high"), [(0, 150.0, 170.0), (16, 0.0, 20.0)])
def test_iir_filter_smooths_a_disturbance(coefficient: int, low: float, high: float) -> None:
    sensor, sim, _, _ = make(iir_filter=coefficient)
    quiet(sim)
    for _ in range(3):
        sensor.read()
    sim.signals["pressure_pa"].set_faults(spike_probability=1.0, spike_size=160.0)
    error = abs(sensor.read()["pressure_pa"] - sim.signals["pressure_pa"].true_value())
    assert low <= error <= high  # unfiltered the whole 160 Pa spike shows, filtered about 1/16


def test_bmp280_on_the_simulator() -> None:
    sensor, sim, bus, _ = make(chip_id=0x58)
    assert "relative_humidity_pct" not in sim.signals
    assert set(sensor.read()) == {"temperature_c", "pressure_pa"}
    assert not any(out[:1] in (b"\xf2", b"\xe1") for out, _ in bus.log)
    assert bus.log[-1] == (b"\xf3", 10)  # status … config, then the T/P data
    assert sensor.self_test().passed


def test_signal_faults_are_keyed_by_quantity() -> None:
    sensor, sim, _, clock = make()
    sim.signals["temperature_c"].set_faults(stuck=True)
    first = sensor.read()["temperature_c"]
    clock.advance(600)
    assert sensor.read()["temperature_c"] == first


# -- the simulator's register behaviour, driven directly over the bus ----------------------


def sim_bus(chip_id: int = 0x60) -> tuple[SimulatedSMBus, SimulatedBME280, ManualClock]:
    clock = ManualClock()
    bus = SimulatedSMBus()
    sim = SimulatedBME280(ADDRESS, clock=clock, seed=3, chip_id=chip_id)
    bus.attach(sim)
    return bus, sim, clock


def test_sim_forced_conversion_timing() -> None:
    bus, _, clock = sim_bus()
    assert bus.read_i2c_block_data(ADDRESS, Reg.DATA, 8) == [0x80, 0, 0, 0x80, 0, 0, 0x80, 0]
    bus.write_byte_data(ADDRESS, Reg.CTRL_HUM, 0x01)
    bus.write_byte_data(ADDRESS, Reg.CTRL_MEAS, 0x25)
    clock.advance(0.0079)  # t_meas,typ x1/x1/x1 = 8 ms
    assert bus.read_byte_data(ADDRESS, Reg.STATUS) == 0x08  # measuring
    assert bus.read_byte_data(ADDRESS, Reg.CTRL_MEAS) == 0x25
    assert bus.read_i2c_block_data(ADDRESS, Reg.DATA, 8)[0:1] == [0x80]  # old (reset) data
    clock.advance(0.0002)
    assert bus.read_byte_data(ADDRESS, Reg.STATUS) == 0x00
    assert bus.read_byte_data(ADDRESS, Reg.CTRL_MEAS) == 0x24  # back to sleep
    assert bus.read_i2c_block_data(ADDRESS, Reg.DATA, 8) != [0x80, 0, 0, 0x80, 0, 0, 0x80, 0]


def test_sim_soft_reset() -> None:
    bus, _, clock = sim_bus()
    bus.write_byte_data(ADDRESS, Reg.CTRL_HUM, 0x05)
    bus.write_byte_data(ADDRESS, Reg.CONFIG, 0x10)
    bus.write_byte_data(ADDRESS, Reg.CTRL_MEAS, 0x25)
    clock.advance(0.1)
    bus.write_byte_data(ADDRESS, Reg.RESET, 0xB6)
    assert bus.read_byte_data(ADDRESS, Reg.STATUS) == 0x01  # im_update: NVM being copied
    clock.advance(0.002)
    assert bus.read_byte_data(ADDRESS, Reg.STATUS) == 0x00
    assert bus.read_i2c_block_data(ADDRESS, Reg.CTRL_HUM, 4) == [0, 0, 0, 0]
    assert bus.read_i2c_block_data(ADDRESS, Reg.DATA, 8) == [0x80, 0, 0, 0x80, 0, 0, 0x80, 0]
    assert bus.read_byte_data(ADDRESS, Reg.RESET) == 0x00
    bus.write_byte_data(ADDRESS, Reg.RESET, 0x01)  # anything but 0xB6 does nothing
    assert bus.read_byte_data(ADDRESS, Reg.STATUS) == 0x00


def test_sim_writes_are_address_data_pairs() -> None:
    bus, sim, _ = sim_bus()
    bus.write_i2c_block_data(ADDRESS, Reg.CTRL_HUM, [0x05, Reg.CONFIG, 0x10])
    assert sim.registers[Reg.CTRL_HUM] == 0x05
    assert sim.registers[Reg.CONFIG] == 0x10
    assert bus.read_byte_data(ADDRESS, Reg.STATUS) == 0x00  # not overwritten: no auto-increment


def test_sim_ctrl_hum_takes_effect_only_after_a_ctrl_meas_write() -> None:
    bus, _, clock = sim_bus()
    bus.write_byte_data(ADDRESS, Reg.CTRL_MEAS, 0x27)  # normal mode, humidity skipped (ctrl_hum 0)
    clock.advance(0.1)
    assert bus.read_i2c_block_data(ADDRESS, 0xFD, 2) == [0x80, 0x00]
    bus.write_byte_data(ADDRESS, Reg.CTRL_HUM, 0x01)
    assert bus.read_byte_data(ADDRESS, Reg.CTRL_HUM) == 0x01
    clock.advance(0.1)
    assert bus.read_i2c_block_data(ADDRESS, 0xFD, 2) == [0x80, 0x00]  # not latched yet
    bus.write_byte_data(ADDRESS, Reg.CTRL_MEAS, 0x27)
    clock.advance(0.1)
    assert bus.read_i2c_block_data(ADDRESS, 0xFD, 2) != [0x80, 0x00]


def test_sim_normal_mode_cycles_and_ignores_config_writes() -> None:
    bus, sim, clock = sim_bus()
    bus.write_byte_data(ADDRESS, Reg.CONFIG, 0x20)  # t_sb 62.5 ms
    bus.write_byte_data(ADDRESS, Reg.CTRL_HUM, 0x01)
    bus.write_byte_data(ADDRESS, Reg.CTRL_MEAS, 0x27)
    statuses = []
    for _ in range(8):
        statuses.append(bus.read_byte_data(ADDRESS, Reg.STATUS))
        clock.advance(0.0705 / 4)  # a quarter of t_meas (8 ms) + t_sb
    assert 0x08 in statuses and 0x00 in statuses
    first = bus.read_i2c_block_data(ADDRESS, Reg.DATA, 8)
    clock.advance(60)
    assert bus.read_i2c_block_data(ADDRESS, Reg.DATA, 8) != first
    bus.write_byte_data(ADDRESS, Reg.CONFIG, 0x00)
    assert sim.registers[Reg.CONFIG] == 0x20


# -- 4. faults --------------------------------------------------------------------------------


def test_nack_gives_bus_error_with_errno_and_the_next_read_recovers() -> None:
    sensor, _, bus, _ = make()
    bus.inject(ADDRESS, BusFault())
    with pytest.raises(BusError, match=r"errno 121.*no ACK") as caught:
        sensor.read()
    assert caught.value.errno == errno.EREMOTEIO
    assert isinstance(caught.value.__cause__, OSError)
    assert set(sensor.read()) == {"temperature_c", "pressure_pa", "relative_humidity_pct"}


def test_eio_keeps_its_errno() -> None:
    sensor, _, bus, _ = make()
    bus.inject(ADDRESS, BusFault(errno=errno.EIO))
    with pytest.raises(BusError) as caught:
        sensor.read()
    assert caught.value.errno == errno.EIO


def test_absent_chip() -> None:
    with pytest.raises(ChipNotFoundError, match="0x77") as caught:
        BME280(SimulatedSMBus(), 0x77, clock=ManualClock())
    assert not isinstance(caught.value, WrongChipError)
    assert isinstance(caught.value.__cause__, OSError)


def test_bus_failure_after_the_chip_answered_is_a_bus_error() -> None:
    regs: dict[int, int] = {Reg.CHIP_ID: 0x60}
    load(regs, Reg.CALIB_TP, PIMORONI_TP)
    with pytest.raises(BusError, match="soft reset") as caught:
        BME280(RegisterArrayBus(regs, fail_writes=errno.EIO), clock=ManualClock())
    assert caught.value.errno == errno.EIO


def test_wrong_chip_names_the_id_found() -> None:
    with pytest.raises(WrongChipError, match=r"0x61 \(a BME680\?\)"):
        make(chip_id=0x61)
    with pytest.raises(WrongChipError, match="0x00"):
        BME280(RegisterArrayBus({}), clock=ManualClock())


def test_conversion_that_never_ends_times_out_then_recovers() -> None:
    sensor, sim, _, _ = make()
    sim.stuck_measuring = True
    with pytest.raises(SensorTimeoutError, match="forced measurement not finished"):
        sensor.read()
    sim.stuck_measuring = False
    assert "temperature_c" in sensor.read()


def test_nvm_copy_that_never_ends_times_out_at_start_up() -> None:
    clock = ManualClock()
    bus = SimulatedSMBus()
    sim = SimulatedBME280(ADDRESS, clock=clock)
    sim.stuck_nvm_copy = True
    bus.attach(sim)
    with pytest.raises(SensorTimeoutError, match="NVM copy"):
        BME280(bus, clock=clock)


def test_blank_calibration_is_rejected() -> None:
    with pytest.raises(MalformedDataError, match="all 0x00"):
        BME280(RegisterArrayBus({int(Reg.CHIP_ID): 0x60}), clock=ManualClock())


def test_short_block_read_is_malformed_data() -> None:
    regs: dict[int, int] = {Reg.CHIP_ID: 0x58}
    load(regs, Reg.CALIB_TP, DS_EXAMPLE_TP)
    bus = RegisterArrayBus(regs)
    sensor = BME280(bus, clock=ManualClock())
    bus.read_i2c_block_data = lambda *args, **kwargs: [0x80, 0x00]  # type: ignore[method-assign]
    with pytest.raises(MalformedDataError, match="got 2 bytes, expected 10"):
        sensor.read()


# -- self-test ----------------------------------------------------------------------------------


def test_self_test_passes_on_a_healthy_chip() -> None:
    sensor, _, _, _ = make()
    result = sensor.self_test()
    assert result.passed, result.detail
    assert set(result.measurements) == {"temperature_c", "pressure_pa", "relative_humidity_pct"}


def test_self_test_notices_changed_calibration() -> None:
    sensor, sim, _, _ = make()
    sim.registers[0x8A] ^= 0x01
    result = sensor.self_test()
    assert not result.passed and "calibration differs" in result.detail


def test_self_test_reports_a_hung_conversion() -> None:
    sensor, sim, _, _ = make()
    sim.stuck_measuring = True
    result = sensor.self_test()
    assert not result.passed and "not finished" in result.detail


# -- 5. identify --------------------------------------------------------------------------------


def test_identify() -> None:
    clock = ManualClock()
    bus = RecordingBus()
    bus.attach(SimulatedBME280(0x76, clock=clock))
    bus.attach(SimulatedBME280(0x77, clock=clock, chip_id=0x58))
    assert identify(bus, 0x76) == "BME280 (chip id 0x60)"
    assert identify(bus, 0x77) == "BMP280 (chip id 0x58)"
    assert bus.log == [(b"\xd0", 1), (b"\xd0", 1)]  # reads only the id register
    bus.detach(0x77)
    assert identify(bus, 0x77) is None  # nothing there
    bus.attach(RegisterDevice(0x77, clock=clock))  # another chip, 0xD0 reads 0x00
    assert identify(bus, 0x77) is None
    bus.inject(0x76, BusFault())
    assert identify(bus, 0x76) is None


# -- options and the driver spec ----------------------------------------------------------------


def test_options_model_matches_the_class_keywords() -> None:
    parameters = inspect.signature(BME280).parameters
    keywords = {
        name: p.default for name, p in parameters.items() if p.kind is p.KEYWORD_ONLY and name != "clock"
    }
    assert keywords == dataclasses.asdict(Options())
    assert all(field.metadata.get("description") for field in dataclasses.fields(Options))


@pytest.mark.parametrize(
    "bad",
    [{"iir_filter": 3}, {"oversampling_temperature": 0}, {"oversampling_pressure": 32}, {"gain": 1}],
)
def test_options_model_rejects_bad_values(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        Options(**bad)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("oversampling_temperature", 0, "oversampling_temperature.*need temperature"),
        ("oversampling_pressure", 3, "oversampling_pressure"),
        ("oversampling_humidity", 32, "oversampling_humidity"),
        ("iir_filter", 1, "iir_filter"),
    ],
)
def test_class_rejects_bad_options_by_name(option: str, value: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(**{option: value})


def test_class_rejects_an_address_a_bme280_cannot_have() -> None:
    with pytest.raises(ValueError, match="address 0x40"):
        BME280(SimulatedSMBus(), 0x40)


def test_driver_spec_builds_the_simulator_and_the_agent_path_works() -> None:
    assert DRIVER.name == "bme280" and DRIVER.bus == "i2c" and DRIVER.addresses == (0x76, 0x77)
    assert [q.name for q in DRIVER.quantities] == ["temperature_c", "pressure_pa", "relative_humidity_pct"]
    assert DRIVER.options is Options
    clock = ManualClock()
    bus = SimulatedSMBus()
    device = SimulatedBME280(0x77, clock=clock, seed=5)
    assert isinstance(device, SimulatedBME280) and device.address == 0x77
    bus.attach(device)
    options = Options(**{"oversampling_pressure": 4, "iir_filter": 2})
    sensor = DRIVER.factory(bus, 0x77, clock=clock, **dataclasses.asdict(options))
    assert set(sensor.read()) == {"temperature_c", "pressure_pa", "relative_humidity_pct"}


# -- skipped and reset values (issue 16 item 1) -----------------------------------------------

POWER_ON_CONTROL = {Reg.CTRL_HUM: 0x00, Reg.CTRL_MEAS: 0x00, Reg.CONFIG: 0x00}
POWER_ON_DATA = [0x80, 0x00, 0x00, 0x80, 0x00, 0x00, 0x80, 0x00]  # DS Table 18 reset values


def started_real_chip() -> RegisterArrayBus:
    regs: dict[int, int] = {Reg.CHIP_ID: 0x60}
    load(regs, Reg.CALIB_TP, PIMORONI_TP)
    load(regs, Reg.CALIB_H, PIMORONI_H)
    load(regs, Reg.DATA, word20(PIMORONI_ADC["p"]) + word20(PIMORONI_ADC["t"]) + [30281 >> 8, 30281 & 0xFF])
    return RegisterArrayBus(regs)


def test_a_chip_reset_to_power_on_values_is_an_error_and_reconfigured() -> None:
    bus = started_real_chip()
    sensor = BME280(bus, clock=ManualClock())
    # Brown-out after start-up: the register dump of a chip that just powered up.
    for register, value in POWER_ON_CONTROL.items():
        bus.regs[register] = value
    bus.regs[Reg.DATA : Reg.DATA + 8] = bytes(POWER_ON_DATA)
    bus.writes.clear()
    with pytest.raises(ChipResetError, match=r"lost its settings \(ctrl_hum 0x00"):
        sensor.read()  # the old driver returned 22.97 °C-like numbers from 0x80000
    # The configuration is written again, ctrl_hum before ctrl_meas.
    assert bus.writes == [(0xF4, 0x25), (0xF2, 0x01), (0xF4, 0x24), (0xF5, 0x00)]
    load_real = word20(PIMORONI_ADC["p"]) + word20(PIMORONI_ADC["t"]) + [30281 >> 8, 30281 & 0xFF]
    bus.regs[Reg.DATA : Reg.DATA + 8] = bytes(load_real)
    assert sensor.read()["relative_humidity_pct"] == 70317 / 1024


def test_lost_ctrl_hum_does_not_turn_0x8000_into_a_humidity() -> None:
    bus = started_real_chip()
    sensor = BME280(bus, clock=ManualClock())
    # Reset before the trigger: our forced write restores ctrl_meas, but ctrl_hum stays
    # 0x00, so humidity is skipped and reads 0x8000 while T and P are real.
    bus.regs[Reg.CTRL_HUM] = 0x00
    bus.regs[Reg.DATA + 6 : Reg.DATA + 8] = b"\x80\x00"
    with pytest.raises(ChipResetError, match="ctrl_hum 0x00"):
        sensor.read()
    assert bus.regs[Reg.CTRL_HUM] == 0x01


def test_skipped_codes_with_intact_settings_are_not_ready_not_numbers() -> None:
    bus = started_real_chip()
    sensor = BME280(bus, clock=ManualClock())
    bus.regs[Reg.DATA : Reg.DATA + 8] = bytes(POWER_ON_DATA)
    with pytest.raises(NotReadyError, match="temperature 0x80000, pressure 0x80000, humidity 0x8000") as info:
        sensor.read()
    assert not isinstance(info.value, ChipResetError)


def test_simulated_brown_out_is_noticed_and_the_next_reading_is_true() -> None:
    sensor, sim, _, clock = make()
    quiet(sim)
    sensor.read()
    sim.brown_out()
    with pytest.raises(ChipResetError):
        sensor.read()
    clock.advance(1)
    values = sensor.read()
    truth = sim.signals["relative_humidity_pct"].true_value()
    assert values["relative_humidity_pct"] == pytest.approx(truth, abs=0.01)


def test_simulated_brown_out_during_a_conversion_leaves_reset_data_that_is_refused() -> None:
    sensor, sim, _, clock = make()
    sim.brown_out(during_next_conversion=True)
    with pytest.raises(ChipResetError, match="ctrl_meas 0x00"):
        sensor.read()
    assert sim.registers[0xF7:0xFF] == bytes(POWER_ON_DATA)  # what the old driver computed from
    clock.advance(1)
    assert set(sensor.read()) == {"temperature_c", "pressure_pa", "relative_humidity_pct"}


def test_self_test_right_after_a_reset_cannot_judge_rather_than_fail() -> None:
    sensor, sim, _, clock = make()
    sim.brown_out()
    clock.advance(0.01)  # the NVM copy after the reset is over
    with pytest.raises(ChipResetError):
        sensor.self_test()  # an `error` result (cannot judge), not a failed chip
    clock.advance(1)
    assert sensor.self_test().passed
