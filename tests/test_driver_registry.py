"""Drivers and simulators come from two entry-point groups; a broken plug-in is reported, not fatal."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
from importlib.metadata import Distribution, EntryPoint, distribution
from pathlib import Path

import pytest

from edge_agent.daemon.main import Daemon
from edge_agent.errors import HardwareOpenError
from edge_agent.sampling import registry as driver_registry
from edge_agent.sampling.hardware import Hardware, LeftOff, simulated_demo_board
from edge_agent.sampling.registry import (
    ENTRY_POINT_GROUP,
    SIMULATOR_ENTRY_POINT_GROUP,
    DriverRegistry,
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


def installed(
    tmp_path: Path, name: str, version: str, *, drivers: str = "", simulators: str = ""
) -> tuple[list[EntryPoint], list[EntryPoint]]:
    """The driver and simulator entry points of a distribution as pip would install it.

    ``drivers`` / ``simulators`` are lines of ``entry_points.txt`` (``name = module:attr``);
    the entry points know their distribution, as those of ``entry_points()`` do.
    """
    info = tmp_path / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n{drivers}\n\n[{SIMULATOR_ENTRY_POINT_GROUP}]\n{simulators}\n"
    )
    found = Distribution.at(info).entry_points
    return list(found.select(group=ENTRY_POINT_GROUP)), list(found.select(group=SIMULATOR_ENTRY_POINT_GROUP))


def built_in() -> tuple[list[EntryPoint], list[EntryPoint]]:
    found = distribution("edge-drivers").entry_points
    return list(found.select(group=ENTRY_POINT_GROUP)), list(found.select(group=SIMULATOR_ENTRY_POINT_GROUP))


def every_order(*packages: tuple[list[EntryPoint], list[EntryPoint]]) -> list[DriverRegistry]:
    """The registry built with the packages found in every order (as sys.path may list them)."""
    return [
        build_registry([e for drivers, _ in order for e in drivers], [e for _, sims in order for e in sims])
        for order in itertools.permutations(packages)
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
    duplicate = next(b for b in registry.broken if b.name == "fakei2c")
    assert "driver name 'fakei2c' is provided by both unknown" in duplicate.error
    assert duplicate.used_instead == "unknown"


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
    assert (
        "a simulator for 'fakei2c' is provided by both unknown (tests.fake_simulator:SimulatedFake)"
        in (errors["fakei2c"])
    )
    assert errors["fakei2"] == (
        "entry point is named 'fakei2' but no driver of that name is installed (did you mean 'fakei2c'?)"
    )
    assert errors["fakebroken"] == "its driver 'fakebroken' could not be loaded"
    assert errors["missing"].startswith("ModuleNotFoundError")
    assert "is a int, not a simulator factory" in errors["notafactory"]
    assert registry.names() == ["fakei2c", "fakeplain", "fakeserial"]  # drivers are unaffected
    assert registry.no_simulator("fakeplain").startswith("has a simulator that cannot be used")
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
    # The demo board of `scan --bus sim` leaves a broken simulator off instead of failing, and says so.
    board = simulated_demo_board(registry)
    assert sorted(board.bus.devices) == [0x10]
    assert board.left_off == [
        LeftOff(
            "fakeplain", 0x30, "the simulator of 'fakeplain' made a SilentSerial, not a SimulatedI2CDevice"
        )
    ]


def test_a_third_party_simulator_never_displaces_a_built_in_one(tmp_path: Path) -> None:
    """Whichever order sys.path finds them in, the built-in SHT3x simulator stays, and 0x44 is on the board."""
    acme = installed(tmp_path, "acme-sim", "1.0", simulators="sht3x = tests.fake_simulator:SimulatedFake")
    for registry in every_order(built_in(), acme):
        used = registry.simulators["sht3x"]
        assert used.provider.startswith("edge-drivers ")
        assert used.entry_point == "edge_drivers.sim.sht3x:SimulatedSHT3x"
        (loser,) = registry.broken
        assert (loser.kind, loser.name, loser.provider) == ("simulator", "sht3x", "acme-sim 1.0")
        assert loser.used_instead is not None and loser.used_instead.startswith("edge-drivers ")
        assert loser.error == (
            f"a simulator for 'sht3x' is provided by both {used.provider} (edge_drivers.sim.sht3x:SimulatedSHT3x) "
            f"and acme-sim 1.0 (tests.fake_simulator:SimulatedFake); {used.provider}'s is used: "
            "the built-in edge-drivers wins over other packages"
        )
        board = simulated_demo_board(registry, clock=ManualClock())
        assert 0x44 in board.bus.devices and board.left_off == []


def test_a_third_party_driver_never_displaces_a_built_in_one(tmp_path: Path) -> None:
    acme = installed(
        tmp_path,
        "acme-sensors",
        "2.0",
        drivers="sht3x = tests.fake_driver:FAKE_SHT3X",
        simulators="sht3x = tests.fake_simulator:make_fake",
    )
    for registry in every_order(built_in(), acme):
        assert registry.drivers["sht3x"].entry_point == "edge_drivers.sht3x:DRIVER"
        assert registry.simulators["sht3x"].entry_point == "edge_drivers.sim.sht3x:SimulatedSHT3x"
        driver, simulator = registry.broken  # drivers are listed first
        assert (driver.kind, driver.provider) == ("driver", "acme-sensors 2.0")
        assert driver.error.startswith("driver name 'sht3x' is provided by both edge-drivers ")
        assert "and acme-sensors 2.0 (tests.fake_driver:FAKE_SHT3X)" in driver.error
        assert driver.error.endswith("the built-in edge-drivers wins over other packages")
        # Its simulator models its own driver, not the built-in one, so it is not used either.
        assert (simulator.kind, simulator.provider) == ("simulator", "acme-sensors 2.0")
        assert simulator.error.startswith("its package's driver 'sht3x' is not used (edge-drivers ")


def test_between_third_parties_the_first_by_distribution_name_wins(tmp_path: Path) -> None:
    zeta = installed(
        tmp_path,
        "zeta-sensors",
        "9.0",
        drivers="fakei2c = tests.fake_driver:FAKE_I2C",
        simulators="fakei2c = tests.fake_simulator:SimulatedFake",
    )
    alpha = installed(
        tmp_path,
        "Alpha_Sensors",
        "1.0",
        drivers="fakei2c = tests.fake_driver:FAKE_I2C",
        simulators="fakei2c = tests.fake_simulator:make_fake",
    )
    for registry in every_order(zeta, alpha):
        assert registry.drivers["fakei2c"].provider == "Alpha_Sensors 1.0"
        assert registry.simulators["fakei2c"].entry_point == "tests.fake_simulator:make_fake"
        assert [(b.kind, b.provider, b.used_instead) for b in registry.broken] == [
            ("driver", "zeta-sensors 9.0", "Alpha_Sensors 1.0"),
            ("simulator", "zeta-sensors 9.0", "Alpha_Sensors 1.0"),
        ]
        driver, simulator = registry.broken
        assert driver.error == (
            "driver name 'fakei2c' is provided by both Alpha_Sensors 1.0 (tests.fake_driver:FAKE_I2C) and "
            "zeta-sensors 9.0 (tests.fake_driver:FAKE_I2C); Alpha_Sensors 1.0's is used: "
            "between other packages, the first by distribution name wins"
        )
        assert simulator.error == (
            "its package's driver 'fakei2c' is not used (Alpha_Sensors 1.0's is), so neither is its simulator"
        )


def test_a_drivers_own_package_provides_its_simulator_first(tmp_path: Path) -> None:
    """A simulator-only package sorting first by name does not displace the driver's own simulator."""
    tango = installed(
        tmp_path,
        "tango-sensors",
        "1.0",
        drivers="fakei2c = tests.fake_driver:FAKE_I2C",
        simulators="fakei2c = tests.fake_simulator:make_fake",
    )
    sims = installed(tmp_path, "aaa-sims", "1.0", simulators="fakei2c = tests.fake_simulator:SimulatedFake")
    for registry in every_order(tango, sims):
        assert registry.simulators["fakei2c"].provider == "tango-sensors 1.0"
        (loser,) = registry.broken
        assert loser.provider == "aaa-sims 1.0"
        assert loser.error.endswith("the package that provides the driver in use wins")
    # Without one of its own, the driver takes the simulator-only package's.
    (tmp_path / "alone").mkdir()
    drivers, _ = installed(
        tmp_path / "alone", "tango-sensors", "1.0", drivers="fakei2c = tests.fake_driver:FAKE_I2C"
    )
    registry = build_registry(drivers, sims[1])
    assert registry.simulators["fakei2c"].provider == "aaa-sims 1.0" and registry.broken == []


def test_the_demo_board_says_which_simulators_it_left_off_and_why() -> None:
    registry = build_registry(
        [
            *FAKE_DRIVERS,
            ep("fakeclash", "tests.fake_driver:FAKE_CLASH"),
            ep("fakebroken", "tests.fake_driver:FAKE_I2C"),
        ],
        [
            sim_ep("fakeclash", "tests.fake_simulator:make_fake"),
            sim_ep("fakei2c", "tests.fake_simulator:make_fake"),
            sim_ep("fakeplain", "tests.fake_simulator:make_failing"),
        ],
    )
    board = simulated_demo_board(registry, clock=ManualClock())
    assert sorted(board.bus.devices) == [0x10]
    assert [str(missing) for missing in board.left_off] == [
        "fakei2c at 0x10: the address is taken by fakeclash's simulator",
        "fakeplain at 0x30: the simulator of 'fakeplain' failed: RuntimeError: no room in the simulated cabinet",
    ]
    unloadable = build_registry(FAKE_DRIVERS, [sim_ep("fakei2c", "no_such_module_xyz:Sim")])
    (missing,) = simulated_demo_board(unloadable).left_off
    assert str(missing).startswith("fakei2c at 0x10: its simulator cannot be used (ModuleNotFoundError")


def test_a_simulator_must_build_its_device_at_the_address_it_is_given() -> None:
    registry = build_registry(FAKE_DRIVERS, [sim_ep("fakei2c", "tests.fake_simulator:make_elsewhere")])
    (missing,) = simulated_demo_board(registry).left_off
    assert missing.reason == "the simulator of 'fakei2c' made a device at 0x11 when asked for 0x10"
    hardware = Hardware(registry, clock=ManualClock())
    with pytest.raises(HardwareOpenError, match="made a device at 0x12 when asked for 0x11"):
        hardware.open_sensor(SensorSettings(name="level", driver="fakei2c", bus="sim", address=0x11))
    assert hardware.sim_bus.devices == {}


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
    # The built-in simulators are still there, the BME280's included: PYTHONPATH puts acme-lux
    # ahead of edge-drivers on sys.path, and the built-in one wins all the same.
    assert "SHT3x" in scan.stdout and "BME280" in scan.stdout
    assert scan.stderr == ""  # nothing left off
    drivers = run("drivers")
    row = next(line for line in drivers.stdout.splitlines() if " acmelux " in line)
    assert " yes " in row
    bme280 = next(line for line in drivers.stdout.splitlines() if " bme280 " in line)
    assert "acme-lux" not in bme280  # no "(simulator: acme-lux …)" under the built-in driver
    # Two simulators for one driver: the built-in one is used, the other is listed with
    # both packages and the rule, and nothing else breaks.
    duplicate = next(line for line in drivers.stderr.splitlines() if "simulator 'bme280'" in line)
    assert duplicate.startswith(
        "! simulator 'bme280' from acme-lux 1.2.3 (acme_lux_sim:SimulatedLux) is not used: a simulator "
        "for 'bme280' is provided by both edge-drivers 0.1.0 (edge_drivers.sim.bme280:SimulatedBME280) and "
        "acme-lux 1.2.3 (acme_lux_sim:SimulatedLux); edge-drivers 0.1.0's is used: the built-in "
        "edge-drivers wins over other packages"
    )


def test_scan_sim_says_which_simulators_it_left_off_and_why(tmp_path: Path) -> None:
    (tmp_path / "acme_gauge.py").write_text(
        textwrap.dedent(
            """
            from edge_drivers.api import DriverSpec, Quantity

            class Gauge:
                def __init__(self, bus, address=0x2A, *, clock=None):
                    self.bus, self.address = bus, address

                def read(self):
                    return {"level_m": 1.0}

            def simulated_gauge(address, *, clock, seed=None):
                raise RuntimeError("the gauge simulator is out of order")

            DRIVER = DriverSpec(name="acmegauge", bus="i2c", quantities=(Quantity("level_m", "m"),),
                                factory=Gauge, addresses=(0x2A,))
            """
        )
    )
    dist = tmp_path / "acme_gauge-0.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-gauge\nVersion: 0.3\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nacmegauge = acme_gauge:DRIVER\n\n"
        f"[{SIMULATOR_ENTRY_POINT_GROUP}]\nacmegauge = acme_gauge:simulated_gauge\n"
        "sht3x = acme_gauge:simulated_gauge\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "COLUMNS": "200"}
    scan = subprocess.run(
        [sys.executable, "-m", "edge_agent", "scan", "--bus", "sim"], capture_output=True, text=True, env=env
    )
    assert scan.returncode == 0, scan.stderr
    assert "0x44" in scan.stdout and "SHT3x" in scan.stdout  # the built-in SHT3x simulator is used
    assert "0x2a" not in scan.stdout
    assert scan.stderr.splitlines() == [
        "! left off the simulated bus: acmegauge at 0x2a: the simulator of 'acmegauge' failed: "
        "RuntimeError: the gauge simulator is out of order"
    ]


def test_a_spec_takes_a_dataclass_or_a_pydantic_model_as_options() -> None:
    from edge_drivers.api import DriverSpec, Quantity
    from tests.fake_driver import FakeOptions, FakeSensor, PlainOptions

    for options in (FakeOptions, PlainOptions, None):
        DriverSpec("x", "i2c", (Quantity("level_m", "m"),), FakeSensor, addresses=(0x10,), options=options)
    with pytest.raises(TypeError, match="options must be a dataclass or a pydantic model class"):
        DriverSpec("x", "i2c", (Quantity("level_m", "m"),), FakeSensor, addresses=(0x10,), options=dict)
