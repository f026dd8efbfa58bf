"""Drivers and their simulators, found through two entry-point groups.

``edge_agent.drivers`` maps a driver name to its :class:`~edge_drivers.api.DriverSpec`;
``edge_agent.simulators`` maps a driver name to the factory of its simulator
(``edge_drivers.sim.api``), registered beside the driver so the driver never imports
it.  Built-in drivers and simulators are registered in ``drivers/pyproject.toml``
exactly as a third-party package registers its own, so both take one path.  Each entry
point is loaded inside its own ``try``: a broken plug-in is listed with its error and
never takes the agent down (keyring and pluggy do the same).

Two entry points of one name are a conflict, settled by a rule rather than by the
order of ``sys.path`` (which differs between a virtualenv, a system install and
``PYTHONPATH``): among the entry points that loaded and passed their checks, the
built-in distribution (``edge-drivers``) wins over any other package, and between other
packages the first by distribution name wins.  For a simulator, the package that provides
the driver in use comes first; a simulator registered beside a driver that lost its name
is not used either (it models that package's driver).  Each loser is listed as broken,
with a reason naming both packages.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Literal

from edge_drivers.api import DriverSpec
from edge_drivers.sim.api import SerialDeviceModel, SimulatedI2CDevice
from edge_protocol.units import symbol_of

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
    """A driver or simulator entry point that is not used, and why."""

    name: str
    provider: str
    entry_point: str
    error: str
    kind: Literal["driver", "simulator"] = "driver"
    used_instead: str | None = None
    """For an entry point that lost its name to another (a conflict): the provider of the one
    used (for the simulator of a package whose driver lost: the provider of the driver used).

    None when this one could not be loaded or failed its checks."""


@dataclass
class DriverRegistry:
    drivers: dict[str, RegisteredDriver] = field(default_factory=dict)
    simulators: dict[str, RegisteredSimulator] = field(default_factory=dict)
    broken: list[BrokenDriver] = field(default_factory=list)

    def get(self, name: str) -> RegisteredDriver | None:
        return self.drivers.get(name)

    def unit(self, driver: str, quantity: str) -> str:
        """The unit ``driver`` declares for ``quantity``; else the one its name ends with (a
        scaled ``water_level_m`` is in m, a Modbus map's ``voltage_v`` in V), or ``""``."""
        found = self.drivers.get(driver)
        for q in found.spec.quantities if found is not None else ():
            if q.name == quantity and q.unit:
                return q.unit
        return symbol_of(quantity)

    def simulator(self, driver: str) -> SimulatorFactory | None:
        """The factory of ``driver``'s simulator, if one is registered and loaded."""
        found = self.simulators.get(driver)
        return found.factory if found is not None else None

    def simulator_problem(self, driver: str) -> str | None:
        """Why the simulator registered for ``driver`` cannot be used (it failed to load or one
        of its checks); None if none was registered for it.  Only asked when none is used."""
        for broken in self.broken:
            if broken.kind == "simulator" and broken.name == driver:
                return broken.error
        return None

    def no_simulator(self, driver: str) -> str:
        """Why ``driver`` has no simulator, for an error message (``ships no simulator``)."""
        problem = self.simulator_problem(driver)
        return "ships no simulator" if problem is None else f"has a simulator that cannot be used ({problem})"

    def names(self) -> list[str]:
        return sorted(self.drivers)

    def i2c_drivers(self) -> list[RegisteredDriver]:
        return [d for _, d in sorted(self.drivers.items()) if d.spec.bus == "i2c"]


BUILT_IN_DISTRIBUTION = "edge-drivers"
"""The distribution of the built-in drivers and simulators: it keeps its names whatever else is installed."""


def _canonical(name: str) -> str:
    """A distribution name as packaging compares them (PEP 503): ``Edge_Drivers`` is ``edge-drivers``."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class _Candidate:
    """An entry point that loaded and passed its checks, competing for its name."""

    ep: EntryPoint
    provider: str
    distribution: str | None
    """Canonical name of its distribution; None for an entry point without one (made in a test)."""
    loaded: object


def _provider(ep: EntryPoint) -> str:
    dist = ep.dist
    return f"{dist.name} {dist.version}" if dist is not None else "unknown"


def _distribution(ep: EntryPoint) -> str | None:
    return _canonical(ep.dist.name) if ep.dist is not None else None


def _precedence(candidate: _Candidate, own: str | None = None) -> tuple[bool, bool, bool, str, str]:
    """Sort key: first the driver's own distribution (for simulators), then the built-in one,
    then other distributions by name; the entry point's value breaks a tie within one."""
    dist = candidate.distribution
    return (
        own is None or dist != own,
        dist != BUILT_IN_DISTRIBUTION,
        dist is None,
        dist or "",
        candidate.ep.value,
    )


def _why(winner: _Candidate, loser: _Candidate, own: str | None = None) -> str:
    """Which rule made ``winner`` beat ``loser``, in words for the listing."""
    # The built-in rule first: when the built-in package also provides the driver, it is the one to name.
    if winner.distribution == BUILT_IN_DISTRIBUTION and loser.distribution != BUILT_IN_DISTRIBUTION:
        return f"the built-in {BUILT_IN_DISTRIBUTION} wins over other packages"
    if own is not None and winner.distribution == own and loser.distribution != own:
        return "the package that provides the driver in use wins"
    if winner.distribution != loser.distribution:
        return "between other packages, the first by distribution name wins"
    return "within one package, the first entry point by value wins"


def _settle(
    kind: Literal["driver", "simulator"],
    name: str,
    candidates: list[_Candidate],
    registry: DriverRegistry,
    own: str | None = None,
) -> _Candidate:
    """The candidate used for ``name``; the others are listed as broken, naming both packages."""
    winner, *losers = sorted(candidates, key=lambda c: _precedence(c, own))
    for loser in losers:
        what = "driver name" if kind == "driver" else "a simulator for"
        error = (
            f"{what} {name!r} is provided by both {winner.provider} ({winner.ep.value}) and "
            f"{loser.provider} ({loser.ep.value}); {winner.provider}'s is used: {_why(winner, loser, own)}"
        )
        registry.broken.append(
            BrokenDriver(name, loser.provider, loser.ep.value, error, kind, used_instead=winner.provider)
        )
    return winner


def build_registry(eps: Iterable[EntryPoint], simulators: Iterable[EntryPoint] = ()) -> DriverRegistry:
    """Load every entry point; keep the good ones, settle conflicts, and report the rest.

    Simulators are checked against the drivers settled first: each must name one.  The
    result does not depend on the order of ``eps`` or ``simulators``.
    """
    registry = DriverRegistry()
    drivers: dict[str, list[_Candidate]] = {}
    registered: set[tuple[str | None, str]] = set()
    """(distribution, driver name) of every driver entry point, loaded or not."""
    for ep in eps:
        provider = _provider(ep)
        registered.add((_distribution(ep), ep.name))
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
        drivers.setdefault(spec.name, []).append(_Candidate(ep, provider, _distribution(ep), spec))
    owner: dict[str, str | None] = {}
    """Driver name -> the distribution whose driver is used."""
    for name, candidates in sorted(drivers.items()):
        winner = _settle("driver", name, candidates, registry)
        assert isinstance(winner.loaded, DriverSpec)  # checked above
        registry.drivers[name] = RegisteredDriver(winner.loaded, winner.provider, winner.ep.value)
        owner[name] = winner.distribution
    found: dict[str, list[_Candidate]] = {}
    for ep in simulators:
        provider = _provider(ep)
        loaded = _check_simulator(ep, registry, registered, owner)
        if isinstance(loaded, _Problem):
            registry.broken.append(
                BrokenDriver(ep.name, provider, ep.value, loaded.reason, "simulator", loaded.used_instead)
            )
        else:
            found.setdefault(ep.name, []).append(_Candidate(ep, provider, _distribution(ep), loaded))
    for name, candidates in sorted(found.items()):
        winner = _settle("simulator", name, candidates, registry, own=owner[name])
        assert callable(winner.loaded)  # checked by _check_simulator
        registry.simulators[name] = RegisteredSimulator(name, winner.loaded, winner.provider, winner.ep.value)
    # The listing reads the same whatever order the entry points were found in.
    registry.broken.sort(
        key=lambda b: (b.kind, b.name, b.used_instead is not None, b.provider, b.entry_point)
    )
    return registry


@dataclass(frozen=True)
class _Problem:
    reason: str
    used_instead: str | None = None


def _check_simulator(
    ep: EntryPoint,
    registry: DriverRegistry,
    registered: set[tuple[str | None, str]],
    owner: dict[str, str | None],
) -> object:
    """The simulator factory of ``ep``, or the :class:`_Problem` that keeps it from being used."""
    try:
        factory = ep.load()
    except Exception as exc:  # a plug-in may fail in any way; report it, never crash
        return _Problem(f"{type(exc).__name__}: {exc}")
    if not callable(factory):
        return _Problem(
            f"{ep.value} is a {type(factory).__name__}, not a simulator factory (a class or function)"
        )
    driver = registry.get(ep.name)
    if driver is None:
        if any(b.kind == "driver" and b.name == ep.name for b in registry.broken):
            return _Problem(f"its driver {ep.name!r} could not be loaded")
        close = difflib.get_close_matches(ep.name, registry.names(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return _Problem(f"entry point is named {ep.name!r} but no driver of that name is installed{hint}")
    dist = _distribution(ep)
    if dist is not None and (dist, ep.name) in registered and owner[ep.name] != dist:
        # Registered beside its package's own driver, which lost its name: it models that driver.
        return _Problem(
            f"its package's driver {ep.name!r} is not used ({driver.provider}'s is), so neither is its simulator",
            used_instead=driver.provider,
        )
    # A class can be checked now; what a function returns is checked when it is called.
    # A Modbus simulator is a line object of its own kind (``port``, ``close``): checked when used.
    wanted = {"i2c": SimulatedI2CDevice, "serial": SerialDeviceModel}.get(driver.spec.bus)
    if wanted is not None and isinstance(factory, type) and not issubclass(factory, wanted):
        return _Problem(
            f"{ep.value} is not a {wanted.__name__}, which the {driver.spec.bus} driver {ep.name!r} needs"
        )
    return factory


@functools.cache
def load_registry() -> DriverRegistry:
    """The drivers and simulators installed in this environment (found once per process)."""
    found = entry_points()  # one scan of the installed distributions for both groups
    return build_registry(
        found.select(group=ENTRY_POINT_GROUP), found.select(group=SIMULATOR_ENTRY_POINT_GROUP)
    )
