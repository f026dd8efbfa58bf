"""The Modbus driver against simulated slaves on a real pseudo-terminal (RTU) or TCP socket:
pymodbus's client on one side, pymodbus's framers in the simulator on the other."""

from __future__ import annotations

import gc
import struct
import sys
from collections.abc import Iterator

import pytest

from edge_drivers.api import ManualClock
from edge_drivers.errors import (
    BusError,
    ChecksumError,
    ChipNotFoundError,
    DeviceBusyError,
    DeviceRejectedError,
    IllegalRegisterError,
)
from edge_drivers.modbus.driver import ModbusSensor
from edge_drivers.modbus.link import ModbusLinks, silent_interval_s
from edge_drivers.modbus.registers import decode
from edge_drivers.sim.modbus import SimulatedModbusBus, SimulatedSlave

TIMEOUT = 1.0  # generous: the simulated slaves answer from a thread, on a loaded machine too
SDM120_VALUES = {
    0x0000: 231.5,  # voltage_v
    0x0006: 4.25,  # current_a
    0x000C: 934.75,  # active_power_w
    0x001E: 0.95,  # power_factor_ratio
    0x0046: 49.98,  # frequency_hz
    0x0156: 1234.5,  # total_active_energy_kwh
}


def _float_words(value: float) -> list[int]:
    return list(struct.unpack(">2H", struct.pack(">f", value)))


def _meter(unit: int) -> SimulatedSlave:
    table: dict[int, int] = {}
    for address, value in SDM120_VALUES.items():
        table[address], table[address + 1] = _float_words(value)
    return SimulatedSlave(unit, {"input": table})


@pytest.fixture
def bus() -> Iterator[SimulatedModbusBus]:
    with SimulatedModbusBus([_meter(1), _meter(7)]) as line:
        yield line


@pytest.fixture
def links() -> Iterator[ModbusLinks]:
    found = ModbusLinks()
    yield found
    found.close()


def _sensor(links: ModbusLinks, bus: SimulatedModbusBus, unit: int, **options: object) -> ModbusSensor:
    return ModbusSensor(links, bus.port, 9600, unit=unit, timeout_s=TIMEOUT, **options)  # type: ignore[arg-type]


def test_an_sdm120_reads_its_published_registers_in_as_few_requests_as_planned(
    bus: SimulatedModbusBus, links: ModbusLinks
) -> None:
    meter = _sensor(links, bus, 1, profile="sdm120")
    values = meter.read()
    assert values == {
        "voltage_v": 231.5,
        "current_a": 4.25,
        "active_power_w": 934.75,
        # A float32 is published as its shortest decimal, not the double nearest to it.
        "power_factor_ratio": 0.95,
        "frequency_hz": 49.98,
        "total_active_energy_kwh": 1234.5,
    }
    # Holes between SDM120 registers: one request per value, each for two input registers.
    assert list(bus.slaves[1].requests) == [("input", a, 2) for a in sorted(SDM120_VALUES)]


def test_adjacent_registers_are_one_request(bus: SimulatedModbusBus, links: ModbusLinks) -> None:
    bus.slaves[1].tables["holding"].update({10: 1, 11: 2, 12: 0xFFFF})
    sensor = _sensor(
        links,
        bus,
        1,
        registers=(
            {"quantity": "a_count", "address": 10},
            {"quantity": "b_count", "address": 11},
            {"quantity": "c_count", "address": 12, "type": "int16"},
        ),
    )
    assert sensor.read() == {"a_count": 1.0, "b_count": 2.0, "c_count": -1.0}
    assert list(bus.slaves[1].requests) == [("holding", 10, 3)]


def test_a_silent_slave_fails_alone_and_the_other_slave_on_the_line_still_answers(
    bus: SimulatedModbusBus, links: ModbusLinks
) -> None:
    first, second = _sensor(links, bus, 1, profile="sdm120"), _sensor(links, bus, 7, profile="sdm120")
    assert first.link is second.link, "one line, one port, one client"
    bus.slaves[1].silent = True
    with pytest.raises(ChipNotFoundError, match=r"unit 1 .*no answer within 1(\.0)? s"):
        first.read()
    assert second.read()["voltage_v"] == pytest.approx(231.5)
    with pytest.raises(ChipNotFoundError):
        _sensor(links, bus, 99, registers=({"quantity": "x_v", "address": 0},)).read()  # nobody there
    bus.slaves[1].silent = False
    assert first.read()["current_a"] == 4.25
    # The silent slave was asked once (its first block), then given up on: no retries.
    assert len(bus.slaves[1].requests) == len(SDM120_VALUES)
    assert len(bus.slaves[7].requests) == len(SDM120_VALUES)


def test_a_crc_error_is_an_integrity_error_and_the_next_read_is_clean(
    bus: SimulatedModbusBus, links: ModbusLinks
) -> None:
    meter = _sensor(links, bus, 1, profile="sdm120")
    bus.slaves[1].corrupt_next = 1
    with pytest.raises(ChecksumError, match="no valid frame"):
        meter.read()
    assert meter.read()["voltage_v"] == pytest.approx(231.5)


def test_busy_is_retried_then_reported(bus: SimulatedModbusBus, links: ModbusLinks) -> None:
    meter = _sensor(
        links,
        bus,
        1,
        registers=({"quantity": "voltage_v", "function": "input", "address": 0, "type": "float32"},),
        busy_retries=1,
    )
    bus.slaves[1].busy_next = 1
    assert meter.read() == {"voltage_v": pytest.approx(231.5)}
    assert len(bus.slaves[1].requests) == 2
    bus.slaves[1].busy_next = 5
    with pytest.raises(DeviceBusyError) as caught:
        meter.read()
    assert caught.value.code == 6
    assert len(bus.slaves[1].requests) == 4


def test_an_illegal_address_is_a_configuration_error_naming_the_register(
    bus: SimulatedModbusBus, links: ModbusLinks
) -> None:
    sensor = _sensor(
        links, bus, 1, registers=({"quantity": "flow_m3h", "function": "holding", "address": 0x0200},)
    )
    with pytest.raises(IllegalRegisterError) as caught:
        sensor.read()
    assert caught.value.code == 2
    assert "holding 0x0200 (flow_m3h)" in str(caught.value)


def test_a_device_failure_exception_is_a_rejection(bus: SimulatedModbusBus, links: ModbusLinks) -> None:
    bus.slaves[1].exception = 4
    with pytest.raises(DeviceRejectedError, match="exception 04 server device failure") as caught:
        _sensor(links, bus, 1, profile="sdm120").read()
    assert type(caught.value) is DeviceRejectedError


def test_modbus_tcp_reads_the_same_map() -> None:
    with SimulatedModbusBus([_meter(3)], tcp=True) as line:
        links = ModbusLinks()
        try:
            meter = ModbusSensor(links, line.port, unit=3, profile="sdm120", timeout_s=TIMEOUT)
            assert meter.read()["total_active_energy_kwh"] == 1234.5
        finally:
            links.close()


class _RecordingClock(ManualClock):
    def __init__(self) -> None:
        super().__init__()
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        super().sleep(seconds)


def test_requests_on_a_serial_line_keep_the_silent_interval(bus: SimulatedModbusBus) -> None:
    clock = _RecordingClock()
    links = ModbusLinks(clock=clock)
    try:
        meter = ModbusSensor(links, bus.port, 9600, unit=1, profile="sdm120", timeout_s=TIMEOUT)
        meter.read()
    finally:
        links.close()
    # The manual clock stands still during a transaction: each request after the first
    # waits the whole t3.5 (3.5 characters of 10 bits at 9600 baud).
    gap = silent_interval_s(9600, 10)
    assert clock.slept == [pytest.approx(gap)] * (len(SDM120_VALUES) - 1)
    assert silent_interval_s(38400) == 0.00175


def test_settings_of_one_line_must_agree(bus: SimulatedModbusBus, links: ModbusLinks) -> None:
    first = _sensor(links, bus, 1, profile="sdm120")
    with pytest.raises(BusError, match=r"already open as .* 9600 8N1"):
        ModbusSensor(links, bus.port, 19200, unit=7, profile="sdm120", timeout_s=TIMEOUT)
    assert first.read()["current_a"] == 4.25


def test_without_pymodbus_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pymodbus.client", None)  # what an absent package looks like to import
    with pytest.raises(
        BusError, match=r"^the modbus driver needs pymodbus: pip install 'edge-drivers\[modbus\]'$"
    ):
        ModbusSensor(ModbusLinks(), "/dev/ttyUSB0", unit=1, profile="sdm120")


def test_a_line_reopens_with_new_settings_once_its_sensors_are_gone(
    bus: SimulatedModbusBus, links: ModbusLinks
) -> None:
    old = _sensor(links, bus, 1, profile="sdm120")
    with pytest.raises(BusError, match="already open"):
        ModbusSensor(links, bus.port, 9600, unit=1, profile="sdm120", timeout_s=0.3)
    del old  # a reload dropped the sensors built with the old settings
    gc.collect()
    new = ModbusSensor(links, bus.port, 9600, unit=1, profile="sdm120", timeout_s=0.3)
    assert new.link.settings.timeout_s == 0.3
    assert new.read()["current_a"] == 4.25


def test_a_slow_slave_within_its_timeout_answers_and_beyond_it_never_gives_its_value_to_another(
    bus: SimulatedModbusBus, links: ModbusLinks
) -> None:
    register = ({"quantity": "voltage_v", "function": "input", "address": 0, "type": "float32"},)
    slow, other = _sensor(links, bus, 1, registers=register), _sensor(links, bus, 7, registers=register)
    bus.slaves[1].delay_s = TIMEOUT / 4
    assert slow.read() == {"voltage_v": pytest.approx(231.5)}
    bus.slaves[1].set("input", 0, 100.0, "float32")  # so its late answer cannot pass for unit 7's
    bus.slaves[1].delay_s = TIMEOUT * 2
    with pytest.raises(ChipNotFoundError):
        slow.read()
    # Unit 1's late answer reaches the line while unit 7 is asked.  Arriving apart from unit
    # 7's answer it is skipped; arriving in one read with it, pymodbus's RTU framer drops
    # the buffer, and that one read fails, as garbled or as no answer (the framer found
    # nothing whole).  Never is unit 1's value taken for 7's.  On a loaded machine (8 test
    # workers on 2 cores) the simulator's own answer to 7 can be late too, and garble the
    # read after: a few reads, then the right value, never a wrong one.
    for attempt in range(4):
        try:
            value = other.read()
        except (ChecksumError, ChipNotFoundError):
            continue
        assert value == {"voltage_v": pytest.approx(231.5)}, attempt
        break
    else:
        raise AssertionError("unit 7 never answered cleanly after unit 1's late answer")
    assert len(bus.slaves[1].requests) == 2 and len(bus.slaves[7].requests) == attempt + 1


def test_a_float_register_holding_nan_is_left_out(bus: SimulatedModbusBus, links: ModbusLinks) -> None:
    bus.slaves[1].tables["input"].update({0x0000: 0x7FC0, 0x0001: 0x0000})  # float32 quiet NaN
    assert (
        struct.unpack(">f", bytes.fromhex("7fc00000"))[0] != struct.unpack(">f", bytes.fromhex("7fc00000"))[0]
    )
    values = _sensor(links, bus, 1, profile="sdm120").read()
    assert "voltage_v" not in values and values["current_a"] == 4.25


def test_a_float32_is_its_shortest_decimal_and_still_the_same_float32() -> None:
    for value in (0.95, 49.98, 230.1, 1e-7, -3.4028235e38, 16777217.0, 0.1):
        words = list(struct.unpack(">2H", struct.pack(">f", value)))
        decoded = decode(words, "float32")
        assert struct.pack(">f", decoded) == struct.pack(">f", value)
        assert len(repr(decoded)) <= len(repr(struct.unpack(">f", struct.pack(">f", value))[0]))
    assert decode(list(struct.unpack(">2H", struct.pack(">f", 0.95))), "float32") == 0.95
