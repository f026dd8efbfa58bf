"""edge-drivers stands alone: smbus2 and pyserial, nothing of the agent, MQTT or pydantic.

A script that only installed edge-drivers must be able to import every module and read
every driver on its simulator.  The check runs in a fresh interpreter in which the
agent's libraries cannot be imported at all.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib.metadata import requires

from packaging.requirements import Requirement

SCRIPT = textwrap.dedent(
    """
    import importlib.abc, sys

    FORBIDDEN = {"pydantic", "pydantic_core", "edge_agent", "edge_protocol", "edge_cloud", "paho", "aiosqlite"}

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in FORBIDDEN:
                raise ImportError(f"edge_drivers must not import {name}")
            return None

    sys.meta_path.insert(0, Refuse())

    import pkgutil, importlib
    import edge_drivers
    for module in pkgutil.walk_packages(edge_drivers.__path__, "edge_drivers."):
        importlib.import_module(module.name)

    from edge_drivers.ads1115 import ADS1115
    from edge_drivers.bme280 import BME280
    from edge_drivers.clock import ManualClock
    from edge_drivers.nmea import NMEAGPS
    from edge_drivers.pms5003 import PMS5003
    from edge_drivers.sht3x import SHT3x
    from edge_drivers.sim import SimulatedSerial, SimulatedSMBus
    from edge_drivers.sim.ads1115 import SimulatedADS1115
    from edge_drivers.sim.bme280 import SimulatedBME280
    from edge_drivers.sim.nmea import SimulatedNMEA
    from edge_drivers.sim.pms5003 import SimulatedPMS5003
    from edge_drivers.sim.sht3x import SimulatedSHT3x

    clock = ManualClock()
    bus = SimulatedSMBus()
    for sim in (SimulatedBME280(0x76, clock=clock), SimulatedSHT3x(0x44, clock=clock), SimulatedADS1115(0x48, clock=clock)):
        bus.attach(sim)
    readings = [BME280(bus, 0x76, clock=clock).read(), SHT3x(bus, 0x44, clock=clock).read(),
                ADS1115(bus, 0x48, clock=clock, gain=2.048).read()]
    for driver, model in ((PMS5003, SimulatedPMS5003), (NMEAGPS, SimulatedNMEA)):
        port = SimulatedSerial(model(clock=clock, seed=1), clock=clock)
        readings.append(driver(port, clock=clock).read())
    assert all(readings), readings
    try:
        ADS1115(bus, 0x48, clock=clock, gain=2.5)
    except ValueError as exc:
        print(exc)
    """
)


def test_every_module_imports_and_every_driver_reads_without_the_agent_or_pydantic() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ads1115 option gain=2.5: must be one of 6.144, 4.096")


def test_the_distribution_depends_on_smbus2_and_pyserial_only() -> None:
    required = [Requirement(r) for r in requires("edge-drivers") or []]
    assert {r.name for r in required if r.marker is None} == {"smbus2", "pyserial"}
    # The Modbus driver's stack is an extra: pip install 'edge-drivers[modbus]'.
    assert {r.name for r in required if r.marker is not None} == {"pymodbus"}
