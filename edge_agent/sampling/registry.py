"""Drivers found through the ``edge_agent.drivers`` entry-point group.

Built-in drivers are registered in our own ``pyproject.toml`` exactly as a third-party
package registers its own, so both take one path.  Each entry point is loaded inside
its own ``try``: a broken plug-in is listed with its error and never takes the agent
down (keyring and pluggy do the same).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points

from edge_drivers.api import DriverSpec

ENTRY_POINT_GROUP = "edge_agent.drivers"


@dataclass(frozen=True)
class RegisteredDriver:
    spec: DriverSpec
    provider: str
    """The distribution that provides it, with its version (``edge-agent 0.1.0``)."""
    entry_point: str


@dataclass(frozen=True)
class BrokenDriver:
    name: str
    provider: str
    entry_point: str
    error: str


@dataclass
class DriverRegistry:
    drivers: dict[str, RegisteredDriver] = field(default_factory=dict)
    broken: list[BrokenDriver] = field(default_factory=list)

    def get(self, name: str) -> RegisteredDriver | None:
        return self.drivers.get(name)

    def names(self) -> list[str]:
        return sorted(self.drivers)

    def i2c_drivers(self) -> list[RegisteredDriver]:
        return [d for _, d in sorted(self.drivers.items()) if d.spec.bus == "i2c"]


def _provider(ep: EntryPoint) -> str:
    dist = ep.dist
    return f"{dist.name} {dist.version}" if dist is not None else "unknown"


def build_registry(eps: Iterable[EntryPoint]) -> DriverRegistry:
    """Load every entry point; keep the good ones and report the broken ones."""
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
    return registry


@functools.cache
def load_registry() -> DriverRegistry:
    """The drivers installed in this environment (loaded once per process)."""
    return build_registry(entry_points(group=ENTRY_POINT_GROUP))
