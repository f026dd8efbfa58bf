"""Simulated sensors for sensor-test tests: the real drivers on the simulated bus, a manual clock."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from edge_agent.calibration import ActiveCalibrations
from edge_agent.sampling.hardware import Hardware
from edge_agent.sampling.registry import load_registry
from edge_agent.sampling.worker import SensorAccess
from edge_agent.sensor_tests.config import TestSettings
from edge_agent.sensor_tests.kinds import CannotJudge, SensorPort, TestContext
from edge_agent.sensor_tests.runner import TestRunner
from edge_agent.settings import SensorSettings, Settings
from edge_drivers.clock import ManualClock

SENSORS = [
    {"name": "climate", "driver": "bme280", "bus": "sim", "address": 0x76},
    {"name": "cabinet", "driver": "sht3x", "bus": "sim", "address": 0x44},
    {"name": "analog", "driver": "ads1115", "bus": "sim", "address": 0x48, "options": {"channels": [0, 1]}},
    {"name": "dust", "driver": "pms5003", "port": "sim://", "options": {"mode": "passive"}},
]


def settings_with(tests: list[dict[str, Any]]) -> Settings:
    return Settings(device={"id": "t-1"}, sensors=SENSORS, tests=tests)  # type: ignore[arg-type]


@dataclass
class Bench:
    """Opened simulated sensors and a runner over them."""

    hardware: Hardware
    clock: ManualClock
    ports: dict[str, SensorAccess]
    calibrations: ActiveCalibrations = field(default_factory=ActiveCalibrations)

    def sim(self, name: str) -> Any:
        """The simulator behind a sensor, to inject faults."""
        by_address = {0x76: "climate", 0x44: "cabinet", 0x48: "analog"}
        for address, sensor in by_address.items():
            if sensor == name:
                return self.hardware.sim_bus.devices[address]
        raise KeyError(name)

    def runner(self, tests: list[dict[str, Any]]) -> TestRunner:
        settings = settings_with(tests)

        def port(name: str) -> SensorPort:
            if name not in self.ports:
                raise CannotJudge(f"sensor {name} is not open")
            return self.ports[name]

        async def sleep(seconds: float) -> None:
            self.clock.advance(seconds)

        ctx = TestContext(
            port=port,
            calibrations=self.calibrations,
            monotonic=self.clock.monotonic,
            wall=lambda: 1_800_000_000.0,
            sleep=sleep,
        )
        return TestRunner(settings.tests, ctx)


@contextmanager
def bench(names: tuple[str, ...] = ("climate", "cabinet", "analog"), seed: int = 7) -> Iterator[Bench]:
    clock = ManualClock()
    with Hardware(load_registry(), clock=clock, seed=seed) as hardware:
        ports: dict[str, SensorAccess] = {}
        for raw in SENSORS:
            if raw["name"] in names:
                s = SensorSettings(**raw)  # type: ignore[arg-type]
                ports[s.name] = SensorAccess(s.name, hardware.open_sensor(s), 10.0)
        try:
            yield Bench(hardware, clock, ports)
        finally:
            for p in ports.values():
                p.stop()


def only(runner: TestRunner) -> TestSettings:
    (test,) = runner.tests.values()
    return test
