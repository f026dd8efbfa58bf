"""``edge-agent read`` shows what the daemon sends: calibrated (with the ids), derived from
corrected inputs, rounded to the resolution; ``--raw`` shows the sensor's own values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.narrow import config_in, fits, run


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return config_in(tmp_path)


def calibrate(config: Path, sensor: str, quantity: str, reading: str, reference: str) -> int:
    result = run(
        "calibrate", sensor, "-q", quantity, "--reading", reading, "--reference", reference, "--yes",
        "--config", str(config),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (saved,) = json.loads(run("calibration", "show", sensor, "--json", "--config", str(config)).stdout)
    return int(saved["id"])


def read_json(config: Path, sensor: str, *extra: str) -> dict[str, object]:
    result = run("read", sensor, "--json", *extra, "--config", str(config))
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def test_read_applies_the_calibration_and_names_it_and_raw_does_not(config: Path) -> None:
    cal_id = calibrate(config, "climate", "temperature_c", "20.0", "45.0")  # +25 °C
    sent = read_json(config, "climate")
    raw = read_json(config, "climate", "--raw")
    assert sent["cal"] == {"temperature_c": cal_id} and "raw" not in sent
    assert raw["raw"] is True and "cal" not in raw
    sent_t = sent["values"]["temperature_c"]  # type: ignore[index]
    raw_t = raw["values"]["temperature_c"]  # type: ignore[index]
    assert 20.0 < sent_t - raw_t < 30.0  # the simulated room drifts a little between reads
    # Rounded to the BME280's 0.01 °C, never float noise such as 22.601999999999997.
    assert len(str(sent_t).split(".")[1]) <= 2
    table = run("read", "climate", "--config", str(config))
    assert f"cal #{cal_id}" in table.stdout and fits(table.stdout) and table.stdout.endswith("\n")


def test_a_scaled_quantity_follows_the_calibration_of_its_input(config: Path) -> None:
    cal_id = calibrate(config, "analog", "ain0_voltage_v", "1.5", "1.6")  # +0.1 V on AIN0
    line = read_json(config, "analog")
    values = line["values"]
    assert line["cal"] == {"ain0_voltage_v": cal_id}
    # water_level_m = 0..5 m over 0.6..3.0 V, computed from the corrected AIN0.
    expected = (values["ain0_voltage_v"] - 0.6) / 2.4 * 5.0  # type: ignore[index]
    assert values["water_level_m"] == pytest.approx(expected, abs=1e-9)  # type: ignore[index]


def test_read_errors_stand_on_their_own_line_at_80_columns(tmp_path: Path) -> None:
    text = config_in(tmp_path).read_text().replace('bus = "sim"\naddress = 0x76', "bus = 97\naddress = 0x76")
    path = tmp_path / "missing-bus.toml"
    path.write_text(text)
    result = run("read", "climate", "cabinet", "--config", str(path))
    assert result.exit_code == 1
    error = next(line for line in result.stdout.splitlines() if "error:" in line)
    assert error.split()[1] == "climate" and fits(result.stdout)
    assert "temperature_c" in result.stdout  # the other sensor is still read
