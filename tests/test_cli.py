"""The edge-agent CLI, run as a user runs it: a subprocess, exit codes and all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DEFAULT_CONFIG

EX_CONFIG = 78


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    inherited = {k: v for k, v in os.environ.items() if k != "EDGE_CONFIG"}
    full_env = {**inherited, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )


def test_version_and_help() -> None:
    assert cli("--version").stdout.startswith("edge-agent ")
    out = cli("--help").stdout
    for command in ("drivers", "scan", "read", "config"):
        assert command in out


def test_drivers_lists_the_five_built_in_drivers_with_their_provider() -> None:
    result = cli("drivers")
    assert result.returncode == 0, result.stderr
    for name, bus in [
        ("bme280", "i2c"),
        ("sht3x", "i2c"),
        ("ads1115", "i2c"),
        ("pms5003", "serial"),
        ("nmea", "serial"),
    ]:
        line = next(line for line in result.stdout.splitlines() if f" {name} " in line)
        assert f" {bus} " in line and "edge-drivers" in line
    assert "temperature_c [°C]" in result.stdout or "temperature_c [degC]" in result.stdout
    assert "could not be loaded" not in result.stderr


def test_config_check_accepts_the_default_config() -> None:
    result = cli("config", "check", "--config", str(DEFAULT_CONFIG))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout and "7 sensors" in result.stdout  # 5 enabled, 2 Modbus examples off


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda text: None, "file not found"),
        (lambda text: text.replace('host = "localhost"', 'host = "localhost'), "invalid TOML"),
        (
            lambda text: text.replace("address = 0x48", "adress = 0x48"),
            'sensors[2].adress (sensor "analog"): unknown key',
        ),
        (
            lambda text: text.replace("port = 1883", 'port = "eighteen"'),
            "mqtt.port: Input should be a valid integer",
        ),
        (
            lambda text: text.replace("gain = 4.096", "gain = 5.0"),
            'sensors[2].options.gain (sensor "analog"): must be one of 6.144, 4.096',
        ),
        (
            lambda text: text.replace("gain = 4.096", "gian = 4.096"),
            "sensors[2].options.gian (sensor \"analog\"): unknown key 'gian' (did you mean 'gain'?)",
        ),
        (
            lambda text: text.replace("output_max = 5.0 }", 'output_max = 5.0, unit = "m" }'),
            "sensors[2].options.scaling[0].unit (sensor \"analog\"): unknown key 'unit'",
        ),
    ],
    ids=[
        "missing-file",
        "bad-toml",
        "unknown-key",
        "wrong-type",
        "bad-driver-option",
        "unknown-driver-option",
        "unknown-nested-driver-option",
    ],
)
def test_config_check_names_the_broken_field_and_exits_78(tmp_path: Path, mutate, expected: str) -> None:
    path = tmp_path / "edge-agent.toml"
    text = mutate(DEFAULT_CONFIG.read_text())
    if text is not None:
        path.write_text(text)
    result = cli("config", "check", "--config", str(path))
    assert result.returncode == EX_CONFIG, result.stdout + result.stderr
    assert expected in result.stderr
    assert str(path) in result.stderr
    assert "Traceback" not in result.stderr


def test_every_command_that_loads_config_exits_78_on_bad_config(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[device]\nid = 'x'\nunknown_thing = 1\n")
    for args in (["read", "--all"], ["scan", "--bus", "sim"], ["config", "check"]):
        result = cli(*args, "--config", str(path))
        assert result.returncode == EX_CONFIG, (args, result.stderr)
        assert "device.unknown_thing: unknown key" in result.stderr


def test_config_path_from_edge_config_variable(tmp_path: Path) -> None:
    result = cli("config", "check", env={"EDGE_CONFIG": str(tmp_path / "absent.toml")})
    assert result.returncode == EX_CONFIG and "absent.toml" in result.stderr


def test_read_all_simulated_sensors_as_json_lines_with_changing_values() -> None:
    result = cli(
        "read", "--all", "--json", "--count", "3", "--interval", "1", "--config", str(DEFAULT_CONFIG)
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    by_sensor: dict[str, list[dict[str, float]]] = {}
    for line in lines:
        assert "error" not in line, line
        assert line["ts"].endswith("Z")
        by_sensor.setdefault(line["sensor"], []).append(line["values"])
    assert set(by_sensor) == {"climate", "cabinet", "analog", "dust", "gps"}
    assert all(len(v) == 3 for v in by_sensor.values())
    expected = {
        "climate": {"temperature_c", "pressure_pa", "relative_humidity_pct"},
        "cabinet": {"temperature_c", "relative_humidity_pct"},
        "analog": {"ain0_voltage_v", "ain1_voltage_v", "ain2_voltage_v", "ain3_voltage_v", "water_level_m"},
        "dust": {"pm1_0_ugm3", "pm2_5_ugm3", "pm10_ugm3"},
        "gps": {"latitude_deg", "longitude_deg", "altitude_m"},
    }
    for sensor, quantities in expected.items():
        assert quantities <= set(by_sensor[sensor][0]), (sensor, by_sensor[sensor][0])
        changed = any(by_sensor[sensor][i] != by_sensor[sensor][0] for i in (1, 2))
        assert changed, f"{sensor} values do not change: {by_sensor[sensor]}"
    climate = by_sensor["climate"][0]
    assert -40 < climate["temperature_c"] < 85 and 30000 < climate["pressure_pa"] < 110000
    assert 0 <= climate["relative_humidity_pct"] <= 100


def test_read_one_sensor_as_a_table() -> None:
    result = cli("read", "cabinet", "--config", str(DEFAULT_CONFIG))
    assert result.returncode == 0, result.stderr
    assert (
        "cabinet" in result.stdout
        and "temperature_c" in result.stdout
        and "relative_humidity_pct" in result.stdout
    )


def test_read_unknown_sensor_is_a_usage_error() -> None:
    result = cli("read", "nosuch", "--config", str(DEFAULT_CONFIG))
    assert result.returncode == 2
    assert "unknown sensor 'nosuch'" in result.stderr and "climate" in result.stderr


def test_read_missing_real_bus_reports_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "real.toml"
    path.write_text(
        '[device]\nid = "d"\n[[sensors]]\nname = "t"\ndriver = "bme280"\nbus = 97\naddress = 0x76\n'
    )
    result = cli("read", "--json", "--config", str(path))
    assert result.returncode == 1
    (line,) = [json.loads(x) for x in result.stdout.splitlines()]
    assert line["sensor"] == "t" and "/dev/i2c-97" in line["error"]["message"]


def _addresses(stdout: str) -> dict[str, str]:
    table = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.split("│") if c.strip()]
        if len(cells) == 3 and cells[0].startswith("0x"):
            table[cells[0]] = cells[2]
    return table


def test_scan_sim_bus_lists_the_simulated_sensors_with_their_drivers() -> None:
    result = cli("scan", "--bus", "sim")
    assert result.returncode == 0, result.stderr
    assert _addresses(result.stdout) == {"0x44": "sht3x", "0x48": "ads1115", "0x76": "bme280"}
    assert "40:  -- -- -- -- 44" in result.stdout  # the i2cdetect-style grid


def test_scan_sim_bus_from_config() -> None:
    result = cli("scan", "--bus", "sim", "--config", str(DEFAULT_CONFIG))
    assert result.returncode == 0, result.stderr
    assert _addresses(result.stdout) == {"0x44": "sht3x", "0x48": "ads1115", "0x76": "bme280"}


def test_scan_missing_bus_explains() -> None:
    result = cli("scan", "--bus", "97")
    assert result.returncode == 1
    assert "/dev/i2c-97 does not exist" in result.stderr and "raspi-config" in result.stderr
