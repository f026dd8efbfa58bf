"""Drivers and their simulators, found through two entry-point groups.

``edge_agent.drivers`` maps a driver name to its :class:`~edge_drivers.api.DriverSpec`;
``edge_agent.simulators`` maps a driver name to the factory of its simulator
(``edge_drivers.sim.api``), registered beside the driver so the driver never imports
it.  Built-in drivers and simulators are registered in ``drivers/pyproject.toml``
exactly as a third-party package registers its own, so both take one path.  Each entry
point is loaded inside its own ``try``: a broken plug-in is listed with its error and
never takes the agent down (keyring and pluggy do the same).
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Literal

from edge_drivers.api import DriverSpec
from edge_drivers.sim.api import SerialDeviceModel, SimulatedI2CDevice

ENTRY_POINT_GROUP = "edge_agent.drivers"
SIMULATOR_ENTRY_POINT_GROUP = "edge_agent.simulators"

SimulatorFactory = Callable[..., object]
"""Called as ``edge_drivers.sim.api`` says; what it returns is checked where it is used."""


@dataclass(frozen=True)
class RegisteredDriver:
    spec: DriverSpec
    provider: str
    """The distribution that provides it, with its version (``edge-agent 0.1.0``)."""
    entry_point: str


@dataclass(frozen=True)
class RegisteredSimulator:
    driver: str
    factory: SimulatorFactory
    provider: str
    entry_point: str


@dataclass(frozen=True)
class BrokenDriver:
    """A driver or simulator entry point that could not be used, and why."""

    name: str
    provider: str
    entry_point: str
    error: str
    kind: Literal["driver", "simulator"] = "driver"


@dataclass
class DriverRegistry:
    drivers: dict[str, RegisteredDriver] = field(default_factory=dict)
    simulators: dict[str, RegisteredSimulator] = field(default_factory=dict)
    broken: list[BrokenDriver] = field(default_factory=list)

    def get(self, name: str) -> RegisteredDriver | None:
        return self.drivers.get(name)

    def simulator(self, driver: str) -> SimulatorFactory | None:
        """The factory of ``driver``'s simulator, if one is registered and loaded."""
        found = self.simulators.get(driver)
        return found.factory if found is not None else None

    def no_simulator(self, driver: str) -> str:
        """Why ``driver`` has no simulator, for an error message (``ships no simulator``)."""
        for broken in self.broken:
            if broken.kind == "simulator" and broken.name == driver:
                return f"has a simulator that could not be loaded ({broken.error})"
        return "ships no simulator"

    def names(self) -> list[str]:
        return sorted(self.drivers)

    def i2c_drivers(self) -> list[RegisteredDriver]:
        return [d for _, d in sorted(self.drivers.items()) if d.spec.bus == "i2c"]


def _provider(ep: EntryPoint) -> str:
    dist = ep.dist
    return f"{dist.name} {dist.version}" if dist is not None else "unknown"


def build_registry(eps: Iterable[EntryPoint], simulators: Iterable[EntryPoint] = ()) -> DriverRegistry:
    """Load every entry point; keep the good ones and report the broken ones.

    Simulators are checked against the drivers loaded first: each must name one.
    """
    registry = DriverRegistry()
    for ep in eps:
        provider = _provider(ep)
        try:
            spec = ep.load()
        except Exception as exc:  # a plug-in may fail in any way; report it, never crash
            registry.broken.append(BrokenDriver(ep.name, provider, ep.value, f"{type(exc).__name__}: {exc}"))
            continue
        if not isinstance(spec, DriverSpec):
            error = f"{ep.value} is a {type(spec).__name__}, not a edge_drivers.api.DriverSpec"
            registry.broken.append(BrokenDriver(ep.name, provider, ep.value, error))
            continue
        if spec.name != ep.name:
            error = f"entry point is named {ep.name!r} but the driver declares {spec.name!r}"
            registry.broken.append(BrokenDriver(ep.name, provider, ep.value, error))
            continue
        if spec.name in registry.drivers:
            first = registry.drivers[spec.name].provider
            error = f"driver name {spec.name!r} is already provided by {first}"
            registry.broken.append(BrokenDriver(ep.name, provider, ep.value, error))
            continue
        registry.drivers[spec.name] = RegisteredDriver(spec, provider, ep.value)
    for ep in simulators:
        provider = _provider(ep)
        problem = _load_simulator(ep, registry, provider)
        if problem is not None:
            registry.broken.append(BrokenDriver(ep.name, provider, ep.value, problem, kind="simulator"))
    return registry


def _load_simulator(ep: EntryPoint, registry: DriverRegistry, provider: str) -> str | None:
    """Register the simulator of ``ep``; the reason it cannot be used, or None."""
    try:
        factory = ep.load()
    except Exception as exc:  # a plug-in may fail in any way; report it, never crash
        return f"{type(exc).__name__}: {exc}"
    if not callable(factory):
        return f"{ep.value} is a {type(factory).__name__}, not a simulator factory (a class or function)"
    driver = registry.get(ep.name)
    if driver is None:
        if any(b.kind == "driver" and b.name == ep.name for b in registry.broken):
            return f"its driver {ep.name!r} could not be loaded"
        close = difflib.get_close_matches(ep.name, registry.names(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"entry point is named {ep.name!r} but no driver of that name is installed{hint}"
    # A class can be checked now; what a function returns is checked when it is called.
    wanted = SimulatedI2CDevice if driver.spec.bus == "i2c" else SerialDeviceModel
    if isinstance(factory, type) and not issubclass(factory, wanted):
        return f"{ep.value} is not a {wanted.__name__}, which the {driver.spec.bus} driver {ep.name!r} needs"
    if ep.name in registry.simulators:
        first = registry.simulators[ep.name].provider
        return f"a simulator for {ep.name!r} is already provided by {first}"
    registry.simulators[ep.name] = RegisteredSimulator(ep.name, factory, provider, ep.value)
    return None


@functools.cache
def load_registry() -> DriverRegistry:
    """The drivers and simulators installed in this environment (found once per process)."""
    found = entry_points()  # one scan of the installed distributions for both groups
    return build_registry(
        found.select(group=ENTRY_POINT_GROUP), found.select(group=SIMULATOR_ENTRY_POINT_GROUP)
    )
