"""The Modbus driver through the CLI: read, scan --modbus, config check (subprocesses)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import DEFAULT_CONFIG
from tests.test_cli import EX_CONFIG, cli


def test_read_gives_the_default_configs_modbus_examples_like_any_sensor() -> None:
    result = cli("read", "meter", "pump", "--json", "--config", str(DEFAULT_CONFIG))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["sensor"] for line in lines] == ["meter", "pump"]
    meter, pump = (line["values"] for line in lines)
    assert list(meter) == [
        "voltage_v",
        "current_a",
        "active_power_w",
        "power_factor_ratio",
        "frequency_hz",
        "total_active_energy_kwh",
    ]
    assert 207 <= meter["voltage_v"] <= 253 and 49.8 <= meter["frequency_hz"] <= 50.2
    assert pump["range_full_kpa"] == 100.0 and pump["range_full_pa"] == 100_000.0


def test_the_read_table_gives_a_modbus_maps_units_under_an_aligned_header() -> None:
    """A map declares no units: they come from the quantity names (``voltage_v`` is in V),
    not the names' last letters (``v``, ``kwh``).  Sensor names shorter than the word
    "sensor" must not shift the header off its columns."""
    result = cli("read", "meter", "pump", "-n", "1", "--config", str(DEFAULT_CONFIG))
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    units = {m[1]: m[2] for m in (re.search(r"([a-z0-9_]+) +[-0-9.e]+ ?(\S*)$", row) for row in rows) if m}
    assert len(units) == len(rows) == 11
    assert units["voltage_v"] == "V" and units["current_a"] == "A" and units["active_power_w"] == "W"
    assert units["frequency_hz"] == "Hz" and units["total_active_energy_kwh"] == "kWh"
    assert units["pressure_kpa"] == "kPa" and units["range_full_pa"] == "Pa"
    assert units["power_factor_ratio"] == ""  # a ratio has no unit: none printed
    assert header.index("quantity") == rows[0].index("voltage_v")


def test_scan_modbus_lists_the_unit_ids_that_answer() -> None:
    result = cli("scan", "--modbus", "sim://", "--units", "1-4")
    assert result.returncode == 0, result.stderr
    assert "2 of 4 unit ids answered: 1, 2" in result.stdout


def test_scan_modbus_on_a_missing_port_is_one_line() -> None:
    result = cli("scan", "--modbus", "/dev/ttyUSB-none", "--units", "1-2")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "cannot open Modbus line /dev/ttyUSB-none 9600 8N1: check the device name, permissions "
        "(the 'dialout' group) or the host and port"
    ]


def test_config_check_names_a_bad_register_and_a_test_limit_the_map_lacks(tmp_path: Path) -> None:
    path = tmp_path / "edge-agent.toml"
    text = DEFAULT_CONFIG.read_text()
    assert 'address = 0x0006, type = "int16"' in text
    text = text.replace('address = 0x0006, type = "int16"', 'address = 0x0006, type = "float16"')
    meter_off = 'enabled = false\noptions = { unit = 1, profile = "sdm120" }'
    assert meter_off in text
    text = text.replace(meter_off, meter_off.removeprefix("enabled = false\n"))  # a test needs it on
    path.write_text(
        text
        + """
[[tests]]
name = "mains"
sensor = "meter"
kind = "range"
limits = { voltage_v = [207, 253], volt_v = [0, 1] }
"""
    )
    result = cli("config", "check", "--config", str(path))
    assert result.returncode == EX_CONFIG
    problems = [line for line in result.stderr.splitlines() if line.lstrip().startswith("✗")]
    assert len(problems) == 2, result.stderr
    assert "sensors[6].options.registers[0].type (sensor \"pump\"): Input should be 'int16'" in problems[0]
    # The meter's quantities come from its profile: voltage_v is there, volt_v is not.
    assert ".limits.volt_v" in problems[1] and "does not report 'volt_v'" in problems[1]
    assert "Traceback" not in result.stderr
