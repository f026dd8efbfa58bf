"""Drivers come from the edge_agent.drivers entry-point group; a broken plug-in is reported, not fatal."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from edge_agent.daemon.main import Daemon
from edge_agent.sampling import registry as driver_registry
from edge_agent.sampling.registry import ENTRY_POINT_GROUP, build_registry, load_registry
from edge_agent.settings import load_settings

BUILT_IN = {"bme280", "sht3x", "ads1115", "pms5003", "nmea"}


def ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


def test_good_and_broken_entry_points() -> None:
    registry = build_registry(
        [
            ep("fakei2c", "tests.fake_driver:FAKE_I2C"),
            ep("missing", "no_such_module_xyz:DRIVER"),
            ep("notaspec", "tests.fake_driver:FakeSensor"),
            ep("renamed", "tests.fake_driver:FAKE_SERIAL"),
            ep("fakei2c", "tests.fake_driver:FAKE_I2C"),
        ]
    )
    assert registry.names() == ["fakei2c"]
    errors = {b.name: b.error for b in registry.broken}
    assert errors["missing"].startswith("ModuleNotFoundError")
    assert "not a edge_drivers.api.DriverSpec" in errors["notaspec"]
    assert "declares 'fakeserial'" in errors["renamed"]
    assert any("already provided" in b.error for b in registry.broken if b.name == "fakei2c")


def test_built_in_drivers_register_through_entry_points() -> None:
    registry = load_registry()
    assert set(registry.names()) >= BUILT_IN
    for name in BUILT_IN:
        found = registry.drivers[name]
        assert found.provider.startswith("edge-drivers ")
        assert found.entry_point == f"edge_drivers.{name}:DRIVER"
        assert found.spec.simulator is not None, f"{name} must ship a simulator"
    assert not [b for b in registry.broken if b.name in BUILT_IN]


def test_daemon_start_discovers_entry_points_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Config checks and the daemon share one registry: discovery is not free on a Pi."""
    discoveries: list[object] = []
    real = driver_registry.entry_points
    monkeypatch.setattr(driver_registry, "entry_points", lambda **kw: discoveries.append(kw) or real(**kw))
    load_registry.cache_clear()
    settings = load_settings(Path(__file__).parents[1] / "config" / "edge-agent.toml", environ={})
    daemon = Daemon(settings)
    assert discoveries == [{"group": ENTRY_POINT_GROUP}]
    assert daemon.registry is load_registry()


def test_third_party_package_is_an_equal_citizen(tmp_path: Path) -> None:
    """An installed distribution (dist-info with entry_points.txt) shows up in `edge-agent drivers`."""
    (tmp_path / "acme_lux.py").write_text(
        textwrap.dedent(
            """
            from edge_drivers.api import DriverSpec, Quantity

            class Lux:
                def __init__(self, bus, address=0x23, *, clock=None):
                    self.bus, self.address = bus, address

                def read(self):
                    return {"illuminance_lx": 1.0}

            DRIVER = DriverSpec(name="acmelux", bus="i2c", quantities=(Quantity("illuminance_lx", "lx"),),
                                factory=Lux, addresses=(0x23, 0x5C))
            """
        )
    )
    dist = tmp_path / "acme_lux-1.2.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-lux\nVersion: 1.2.3\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nacmelux = acme_lux:DRIVER\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "COLUMNS": "200"}
    out = subprocess.run(
        [sys.executable, "-m", "edge_agent", "drivers"], capture_output=True, text=True, env=env, check=True
    ).stdout
    assert "acmelux" in out and "acme-lux 1.2.3" in out and "illuminance_lx [lx]" in out
    assert "bme280" in out
