"""What each of the four distributions puts into site-packages, and what it asks for.

Issue 12: no top-level import package named ``drivers`` or ``cloud``; the drivers library
alone (smbus2 and pyserial only); the device package depending on it; the cloud services
in a distribution of their own, sharing only ``edge-protocol`` with the device."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.packaging.wheels import PROJECTS, Wheel, build_wheel, source_tree

CLOUD_STACK = {"fastapi", "uvicorn", "sqlalchemy", "alembic", "argon2-cffi", "pyjwt", "psycopg", "edge-cloud"}


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Wheel]:
    out = tmp_path_factory.mktemp("wheels")
    tree = source_tree(out)
    return {name: build_wheel(tree / folder, out) for name, folder in PROJECTS.items()}


def _installed(wheel: Wheel, target: Path) -> set[str]:
    """What ``pip install`` of the wheel alone writes into a site-packages folder."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
            str(wheel.path),
        ],
        check=True,
        capture_output=True,
    )
    return {p.name for p in target.iterdir() if not p.name.endswith(".dist-info") and p.name != "bin"}


@pytest.mark.parametrize(
    ("distribution", "package"),
    [
        ("edge-agent", "edge_agent"),
        ("edge-drivers", "edge_drivers"),
        ("edge-protocol", "edge_protocol"),
        ("edge-cloud", "edge_cloud"),
    ],
)
def test_each_wheel_installs_exactly_its_own_import_package(
    wheels: dict[str, Wheel], tmp_path: Path, distribution: str, package: str
) -> None:
    wheel = wheels[distribution]
    assert wheel.top_level() == {package}
    assert _installed(wheel, tmp_path) == {package}
    assert not any(n.startswith(("tests/", "drivers/", "cloud/", "bench/")) for n in wheel.names())


def test_the_drivers_library_needs_only_its_buses(wheels: dict[str, Wheel]) -> None:
    assert wheels["edge-drivers"].requires() == {"smbus2", "pyserial"}
    entry_points = wheels["edge-drivers"].entry_points()
    assert "[edge_agent.drivers]" in entry_points
    for name in ("bme280", "sht3x", "ads1115", "pms5003", "nmea"):
        assert f"{name} = edge_drivers.{name}:DRIVER" in entry_points


def test_the_device_package_depends_on_the_drivers_and_the_protocol_and_no_cloud(
    wheels: dict[str, Wheel],
) -> None:
    requires = wheels["edge-agent"].requires()
    assert {"edge-drivers", "edge-protocol", "paho-mqtt", "aiosqlite", "pydantic-settings"} <= requires
    assert requires & CLOUD_STACK == set()
    assert "edge-agent = edge_agent.cli.app:main" in wheels["edge-agent"].entry_points()
    assert "edge-auth" not in wheels["edge-agent"].entry_points()


def test_the_cloud_shares_only_the_protocol_with_the_device(wheels: dict[str, Wheel]) -> None:
    requires = wheels["edge-cloud"].requires()
    assert "edge-protocol" in requires
    assert requires & {"edge-agent", "edge-drivers", "smbus2", "pyserial", "aiosqlite"} == set()
    assert "edge-auth = edge_cloud.auth.cli:main" in wheels["edge-cloud"].entry_points()
    # typing-extensions: pydantic's own dependency, named because wire.py imports its TypedDict.
    assert wheels["edge-protocol"].requires() == {"pydantic", "typing-extensions"}


def test_the_four_versions_move_together(wheels: dict[str, Wheel]) -> None:
    versions = {w.path.name.split("-")[1] for w in wheels.values()}
    assert len(versions) == 1, versions


def test_make_install_puts_no_cloud_code_on_a_device() -> None:
    """``make install``'s pip line, read from the Makefile by make itself (``-n``: print, run nothing)."""
    printed = subprocess.run(
        ["make", "-n", "install", "PREFIX=/nonexistent"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    (pip_line,) = [
        line for line in printed.splitlines() if "pip install" in line and "--upgrade pip" not in line
    ]
    # The Modbus and certificate extras: a pump-house device must not need a second pip line.
    assert shlex.split(pip_line)[-3:] == ["./protocol", "./drivers[modbus]", ".[certificate]"]
    assert "cloud" not in pip_line
