"""Drivers and simulators come from two entry-point groups; a broken plug-in is reported, not fatal."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from edge_agent.daemon.main import Daemon
from edge_agent.errors import HardwareOpenError
from edge_agent.sampling import registry as driver_registry
from edge_agent.sampling.hardware import Hardware, simulated_demo_board
from edge_agent.sampling.registry import (
    ENTRY_POINT_GROUP,
    SIMULATOR_ENTRY_POINT_GROUP,
    build_registry,
    load_registry,
)
from edge_agent.settings import SensorSettings, load_settings
from edge_drivers.clock import ManualClock
from edge_drivers.sim.api import SerialDeviceModel, SimulatedI2CDevice

BUILT_IN = {"bme280", "sht3x", "ads1115", "pms5003", "nmea"}


def ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


def sim_ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=SIMULATOR_ENTRY_POINT_GROUP)


FAKE_DRIVERS = [
    ep("fakei2c", "tests.fake_driver:FAKE_I2C"),
    ep("fakeserial", "tests.fake_driver:FAKE_SERIAL"),
    ep("fakeplain", "tests.fake_driver:FAKE_PLAIN"),
]


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
        simulator = registry.simulators.get(name)
        assert simulator is not None, f"{name} must ship a simulator"
        assert simulator.provider.startswith("edge-drivers ")
        assert simulator.entry_point.startswith(f"edge_drivers.sim.{name}:")
    assert not [b for b in registry.broken if b.name in BUILT_IN]


def test_built_in_simulators_build_the_device_their_driver_talks_to() -> None:
    registry = load_registry()
    clock = ManualClock()
    for name in BUILT_IN:
        spec = registry.drivers[name].spec
        factory = registry.simulator(name)
        assert factory is not None
        if spec.bus == "i2c":
            device = factory(spec.addresses[-1], clock=clock, seed=3)
            assert isinstance(device, SimulatedI2CDevice) and device.address == spec.addresses[-1]
        else:
            device = factory(clock=clock, seed=3)
            assert isinstance(device, SerialDeviceModel)
        # The simulated room: every quantity a simulator models is one its driver declares.
        assert set(getattr(device, "signals", {})) <= {q.name for q in spec.quantities}, name


def test_good_and_broken_simulator_entry_points() -> None:
    registry = build_registry(
        [*FAKE_DRIVERS, ep("fakebroken", "no_such_module_xyz:DRIVER")],
        [
            sim_ep("fakei2c", "tests.fake_simulator:SimulatedFake"),
            sim_ep("fakeserial", "tests.fake_simulator:SilentSerial"),
            sim_ep("fakeplain", "tests.fake_simulator:SilentSerial"),  # serial model for an I2C driver
            sim_ep("fakei2c", "tests.fake_simulator:make_fake"),  # a second one for the same driver
            sim_ep("fakei2", "tests.fake_simulator:make_fake"),  # names no driver
            sim_ep("fakebroken", "tests.fake_simulator:make_fake"),  # its driver is broken
            sim_ep("missing", "no_such_module_xyz:Sim"),
            sim_ep("notafactory", "tests.fake_simulator:NOT_A_FACTORY"),
        ],
    )
    assert sorted(registry.simulators) == ["fakei2c", "fakeserial"]
    assert registry.simulators["fakei2c"].entry_point == "tests.fake_simulator:SimulatedFake"
    errors = {b.name: b.error for b in registry.broken if b.kind == "simulator"}
    assert "is not a SimulatedI2CDevice, which the i2c driver 'fakeplain' needs" in errors["fakeplain"]
    assert "a simulator for 'fakei2c' is already provided by" in errors["fakei2c"]
    assert errors["fakei2"] == (
        "entry point is named 'fakei2' but no driver of that name is installed (did you mean 'fakei2c'?)"
    )
    assert errors["fakebroken"] == "its driver 'fakebroken' could not be loaded"
    assert errors["missing"].startswith("ModuleNotFoundError")
    assert "is a int, not a simulator factory" in errors["notafactory"]
    assert registry.names() == ["fakei2c", "fakeplain", "fakeserial"]  # drivers are unaffected
    assert registry.no_simulator("fakeplain").startswith("has a simulator that could not be loaded")
    assert build_registry(FAKE_DRIVERS).no_simulator("fakeplain") == "ships no simulator"


def test_a_factory_function_is_checked_when_it_is_called() -> None:
    registry = build_registry(
        FAKE_DRIVERS,
        [
            sim_ep("fakei2c", "tests.fake_simulator:make_fake"),
            sim_ep("fakeplain", "tests.fake_simulator:make_wrong"),
        ],
    )
    assert not registry.broken
    hardware = Hardware(registry, clock=ManualClock())
    sensor = SensorSettings(name="level", driver="fakei2c", bus="sim", address=0x11)
    assert hardware.open_sensor(sensor).read() == {"level_m": 1.5}
    assert 0x11 in hardware.sim_bus.devices
    wrong = SensorSettings(name="plain", driver="fakeplain", bus="sim", address=0x30)
    with pytest.raises(HardwareOpenError, match="made a SilentSerial, not a SimulatedI2CDevice"):
        hardware.open_sensor(wrong)
    # The demo board of `scan --bus sim` leaves a broken simulator off instead of failing.
    assert sorted(simulated_demo_board(registry).devices) == [0x10]


def test_daemon_start_discovers_entry_points_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Config checks and the daemon share one registry: discovery is not free on a Pi."""
    discoveries: list[object] = []
    real = driver_registry.entry_points
    monkeypatch.setattr(driver_registry, "entry_points", lambda **kw: discoveries.append(kw) or real(**kw))
    load_registry.cache_clear()
    settings = load_settings(Path(__file__).parents[1] / "config" / "edge-agent.toml", environ={})
    daemon = Daemon(settings)
    assert discoveries == [{}]  # one scan of the installed distributions for both groups
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


def test_third_party_simulator_registers_beside_its_driver(tmp_path: Path) -> None:
    """A plug-in's simulator is found through edge_agent.simulators: `scan --bus sim` identifies its chip."""
    (tmp_path / "acme_lux.py").write_text(
        textwrap.dedent(
            """
            from edge_drivers.api import DriverSpec, Quantity

            CHIP_ID = 0xA5

            def identify(bus, address):
                try:
                    return "ACME lux" if bus.read_byte_data(address, 0x0A) == CHIP_ID else None
                except OSError:
                    return None

            class Lux:
                def __init__(self, bus, address=0x23, *, clock=None):
                    self.bus, self.address = bus, address

                def read(self):
                    return {"illuminance_lx": float(self.bus.read_byte_data(self.address, 0x00))}

            DRIVER = DriverSpec(name="acmelux", bus="i2c", quantities=(Quantity("illuminance_lx", "lx"),),
                                factory=Lux, addresses=(0x23, 0x5C), identify=identify)
            """
        )
    )
    (tmp_path / "acme_lux_sim.py").write_text(
        textwrap.dedent(
            """
            from edge_drivers.sim.api import RegisterDevice
            from acme_lux import CHIP_ID  # sim -> driver, never the other way

            class SimulatedLux(RegisterDevice):
                def __init__(self, address=0x23, *, clock, seed=None):
                    super().__init__(address, clock=clock)
                    self.registers[0x00] = 42
                    self.registers[0x0A] = CHIP_ID
            """
        )
    )
    dist = tmp_path / "acme_lux-1.2.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-lux\nVersion: 1.2.3\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nacmelux = acme_lux:DRIVER\n\n"
        f"[{SIMULATOR_ENTRY_POINT_GROUP}]\nacmelux = acme_lux_sim:SimulatedLux\nbme280 = acme_lux_sim:SimulatedLux\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "COLUMNS": "200"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "edge_agent", *args], capture_output=True, text=True, env=env
        )

    scan = run("scan", "--bus", "sim")
    assert scan.returncode == 0, scan.stderr
    assert "0x23" in scan.stdout and "ACME lux" in scan.stdout and "acmelux" in scan.stdout
    assert "SHT3x" in scan.stdout  # the built-in simulators are still there
    drivers = run("drivers")
    row = next(line for line in drivers.stdout.splitlines() if " acmelux " in line)
    assert " yes " in row
    # Two simulators for one driver: the first found is used (which one depends on the order
    # of sys.path, as for drivers), the other is reported, and nothing else breaks.
    duplicate = next(line for line in drivers.stderr.splitlines() if "simulator 'bme280'" in line)
    assert "could not be loaded: a simulator for 'bme280' is already provided by" in duplicate
    assert "acme-lux 1.2.3" in duplicate and "edge-drivers" in duplicate


def test_a_spec_takes_a_dataclass_or_a_pydantic_model_as_options() -> None:
    from edge_drivers.api import DriverSpec, Quantity
    from tests.fake_driver import FakeOptions, FakeSensor, PlainOptions

    for options in (FakeOptions, PlainOptions, None):
        DriverSpec("x", "i2c", (Quantity("level_m", "m"),), FakeSensor, addresses=(0x10,), options=options)
    with pytest.raises(TypeError, match="options must be a dataclass or a pydantic model class"):
        DriverSpec("x", "i2c", (Quantity("level_m", "m"),), FakeSensor, addresses=(0x10,), options=dict)
