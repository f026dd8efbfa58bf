"""Modbus register maps, decoding and batching: pure code, no bus.

Expected words are built here from ``struct`` (IEEE-754 and two's complement as Python's
C library packs them) and rearranged by hand, never by the driver's own functions.
"""

from __future__ import annotations

import struct

import pytest

from edge_drivers.errors import OptionError
from edge_drivers.modbus.driver import ModbusSensor, Options
from edge_drivers.modbus.profiles import load_profile, profile_names
from edge_drivers.modbus.registers import Register, decode, encode, plan_blocks, value_of

CASES = [
    ("int16", "h", -12345),
    ("uint16", "H", 54321),
    ("int32", "i", -123456789),
    ("uint32", "I", 3_000_000_001),
    ("float32", "f", 229.75),
    ("float64", "d", -1234.5678901234),
]


def _words(big_endian: bytes, word_order: str, byte_order: str) -> list[int]:
    """Registers as a device of that order exposes them, arranged by hand from struct's bytes."""
    pairs = [big_endian[i : i + 2] for i in range(0, len(big_endian), 2)]
    if word_order == "little":
        pairs = pairs[::-1]
    if byte_order == "little":
        pairs = [bytes((p[1], p[0])) for p in pairs]
    return [p[0] << 8 | p[1] for p in pairs]


@pytest.mark.parametrize(("data_type", "code", "value"), CASES)
@pytest.mark.parametrize("word_order", ["big", "little"])
@pytest.mark.parametrize("byte_order", ["big", "little"])
def test_every_type_and_order_decodes_what_struct_packed(
    data_type: str, code: str, value: float, word_order: str, byte_order: str
) -> None:
    words = _words(struct.pack(">" + code, value), word_order, byte_order)
    expected = struct.unpack(">" + code, struct.pack(">" + code, value))[0]  # float32 rounding
    assert decode(words, data_type, word_order, byte_order) == expected  # type: ignore[arg-type]
    assert encode(expected, data_type, word_order, byte_order) == words  # type: ignore[arg-type]


def test_the_four_32_bit_orders_of_one_float_by_name() -> None:
    # 229.75 as float32 is 0x4365C000: A=43 B=65 C=C0 D=00.
    assert struct.pack(">f", 229.75).hex() == "4365c000"
    assert decode([0x4365, 0xC000], "float32", "big", "big") == 229.75  # ABCD
    assert decode([0xC000, 0x4365], "float32", "little", "big") == 229.75  # CDAB
    assert decode([0x6543, 0x00C0], "float32", "big", "little") == 229.75  # BADC
    assert decode([0x00C0, 0x6543], "float32", "little", "little") == 229.75  # DCBA


def test_scale_and_offset_apply_to_the_decoded_number() -> None:
    register = Register(quantity="level_m", address=4, type="int16", scale=0.01, offset=-1.0)
    assert value_of(register, [struct.unpack(">H", struct.pack(">h", -250))[0]]) == pytest.approx(-3.5)


def test_adjacent_registers_share_a_request_up_to_max_block() -> None:
    regs = [
        Register(quantity=f"r{i}_v", function="input", address=2 * i, type="float32") for i in range(6)
    ] + [
        Register(quantity="h_v", function="holding", address=0),
        Register(quantity="far_v", function="input", address=100),
    ]
    blocks = plan_blocks(regs, max_block=125)
    assert [(b.function, b.address, b.count) for b in blocks] == [
        ("holding", 0, 1),
        ("input", 0, 12),
        ("input", 100, 1),
    ]
    small = plan_blocks(regs, max_block=5)
    assert [(b.function, b.address, b.count) for b in small if b.function == "input"] == [
        ("input", 0, 4),
        ("input", 4, 4),
        ("input", 8, 4),
        ("input", 100, 1),
    ]
    # A hole of 2 registers is bridged only when max_gap allows it.
    holey = [Register(quantity="a_v", address=0), Register(quantity="b_v", address=3)]
    assert len(plan_blocks(holey, max_block=125)) == 2
    assert [(b.address, b.count) for b in plan_blocks(holey, max_block=125, max_gap=2)] == [(0, 4)]


def test_sdm120_profile_is_the_published_input_register_table() -> None:
    assert {"sdm120", "transmitter_4_20ma"} <= set(profile_names())
    profile = load_profile("sdm120")
    by_name = {r.quantity: r for r in profile.registers}
    assert {n: r.address for n, r in by_name.items()}.items() >= {
        "voltage_v": 0x0000,
        "current_a": 0x0006,
        "active_power_w": 0x000C,
        "frequency_hz": 0x0046,
        "total_active_energy_kwh": 0x0156,
    }.items()
    assert {(r.function, r.type, r.word_order, r.byte_order) for r in profile.registers} == {
        ("input", "float32", "big", "big")
    }


@pytest.mark.parametrize(
    ("options", "path", "reason"),
    [
        ({"unit": 0, "profile": "sdm120"}, "unit", "1 to 247"),
        ({"unit": 1, "profile": "sdm121"}, "profile", "known: sdm120"),
        ({"unit": 1}, "registers", "register map"),
        ({"unit": 1, "registers": [{"quantity": "x_v", "address": 70000}]}, "registers[0].address", "65535"),
        (
            {"unit": 1, "registers": [{"quantity": "x_v", "address": 1, "function": "coil"}]},
            "registers[0].type",
            "bool",
        ),
        (
            {"unit": 1, "registers": [{"quantity": "Volts", "address": 1}]},
            "registers[0].quantity",
            "snake_case",
        ),
        (
            {"unit": 1, "registers": [{"quantity": "x_v", "address": 1, "type": "float16"}]},
            "registers[0].type",
            "float32",
        ),
        (
            {"unit": 1, "registers": [{"quantity": "x_v", "adress": 1}]},
            "registers[0].adress",
            "unknown field",
        ),
        (
            {"unit": 1, "profile": "sdm120", "registers": [{"quantity": "voltage_v", "address": 1}]},
            "registers[0].quantity",
            "profile",
        ),
        ({"unit": 1, "profile": "sdm120", "max_block": 126}, "max_block", "1 to 125"),
    ],
)
def test_a_bad_register_map_names_the_entry_and_field(
    options: dict[str, object], path: str, reason: str
) -> None:
    with pytest.raises(OptionError) as caught:
        Options(**options)  # type: ignore[arg-type]
    assert str(caught.value).startswith(f"modbus option {path}")
    assert reason in caught.value.reason


def test_options_keep_the_sensors_own_registers_apart_from_the_profile() -> None:
    opts = Options(unit=1, profile="sdm120", registers=({"quantity": "extra_v", "address": 0x0002},))  # type: ignore[arg-type]
    assert [r.quantity for r in opts.registers] == ["extra_v"]
    names = [r.quantity for r in opts.register_map()]
    assert names[0] == "voltage_v" and names[-1] == "extra_v"


@pytest.mark.parametrize(
    ("entry", "words", "expected"),
    [
        ({"quantity": "temperature_c", "address": 0x10, "type": "int16", "scale": 0.1}, [0xFF38], -20.0),
        ({"quantity": "pump_starts_count", "function": "input", "address": 0x20}, [0x01F4], 500.0),
        (
            {
                "quantity": "flow_m3h",
                "address": 0x30,
                "type": "int32",
                "word_order": "little",
                "scale": 0.0036,
            },
            [0xFC18, 0xFFFF],
            -3.6,
        ),
        (
            {
                "quantity": "energy_kwh",
                "function": "input",
                "address": 0x40,
                "type": "uint32",
                "scale": 0.001,
            },
            [0x0001, 0x86A0],
            100.0,
        ),
        (
            {"quantity": "voltage_v", "function": "input", "address": 0, "type": "float32"},
            [0x4365, 0xC000],
            229.75,
        ),
        (
            {"quantity": "volume_m3", "address": 0x100, "type": "float64"},
            [0x40C8, 0x1CD6, 0xE631, 0xF8A1],
            12345.6789,
        ),
        ({"quantity": "pump_on_bool", "function": "coil", "address": 5, "type": "bool"}, [1], 1.0),
    ],
)
def test_the_worked_examples_of_docs_modbus(
    entry: dict[str, object], words: list[int], expected: float
) -> None:
    """docs/MODBUS.md, "One worked example per data type": the numbers the doc shows."""
    assert value_of(Register(**entry), words) == pytest.approx(expected)  # type: ignore[arg-type]


class _Untouchable:
    """Links that fail the test if the driver uses them before its options are checked."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the driver used the links ({name}) before checking its options")


@pytest.mark.parametrize(
    ("options", "path"),
    [
        ({"unit": "1"}, "unit"),
        ({"unit": True}, "unit"),
        ({"profile": 5}, "profile"),
        ({"registers": 5}, "registers"),
        ({"registers": ({"quantity": 5, "address": 0},)}, "registers[0].quantity"),
        ({"registers": ({"quantity": "x_v", "address": True},)}, "registers[0].address"),
        ({"registers": ({"quantity": "x_v", "address": 0, "scale": 10**400},)}, "registers[0].scale"),
        ({"timeout_s": 10**400}, "timeout_s"),
        ({"timeout_s": None}, "timeout_s"),
        ({"stopbits": "1"}, "stopbits"),
        ({"parity": None}, "parity"),
        ({"max_gap": 1.5}, "max_gap"),
    ],
)
def test_a_bad_value_given_to_the_class_is_an_option_error_before_the_line_is_touched(
    options: dict[str, object], path: str
) -> None:
    full: dict[str, object] = {"unit": 1, "profile": "sdm120", **options}
    with pytest.raises(OptionError) as caught:
        ModbusSensor(_Untouchable(), "/dev/ttyUSB0", **full)  # type: ignore[arg-type]
    assert str(caught.value).startswith(f"modbus option {path}")
