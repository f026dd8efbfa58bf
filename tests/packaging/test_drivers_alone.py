"""The drivers library installed alone into a fresh virtual environment: a five-line script
reads a simulated BME280, and nothing of the daemon, MQTT or the cloud came with it."""

from __future__ import annotations

import ast
import json
import subprocess
import venv
from pathlib import Path

import pytest

from tests.conftest import under_ci
from tests.packaging.wheels import build_wheel, source_tree

SCRIPT = """\
from edge_drivers.bme280 import BME280
from edge_drivers.sim import SimulatedSMBus
from edge_drivers.sim.bme280 import SimulatedBME280
bus = SimulatedSMBus(); bus.attach(SimulatedBME280(0x76))
print(BME280(bus, 0x76).read())
"""


def _pip_install(python: Path, wheel: Path) -> None:
    """The wheel, and smbus2 and pyserial from the package index (pip's cache makes a re-run quick)."""
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        message = f"cannot install the drivers wheel's dependencies from the package index: {done.stderr.strip()[-300:]}"
        if under_ci():
            pytest.fail(message)
        pytest.skip(message)


def test_the_drivers_distribution_alone_reads_a_simulated_bme280(tmp_path: Path) -> None:
    wheel = build_wheel(source_tree(tmp_path) / "drivers", tmp_path)
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    _pip_install(python, wheel.path)

    assert SCRIPT.count("\n") == 5
    script = tmp_path / "read_bme280.py"
    script.write_text(SCRIPT)
    # Run from an empty folder, so nothing of the checkout can be imported by accident.
    run = subprocess.run([str(python), str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    reading = ast.literal_eval(run.stdout)  # the dict the script printed
    assert set(reading) == {"temperature_c", "pressure_pa", "relative_humidity_pct"}
    assert 10 < reading["temperature_c"] < 35 and 90_000 < reading["pressure_pa"] < 110_000

    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format", "json", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    installed = {p["name"].lower() for p in json.loads(listed)} - {"pip", "setuptools", "wheel"}
    assert installed == {"edge-drivers", "smbus2", "pyserial"}
    absent = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.util as u; print([m for m in ('edge_agent', 'edge_cloud', 'edge_protocol', 'paho', 'pydantic', 'drivers', 'cloud') if u.find_spec(m)])",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert absent == "[]"
