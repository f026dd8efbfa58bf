"""One simulated room: sensors measuring the same quantity see the same truth.

Each simulator has its own :class:`~edge_drivers.sim.signals.Signal` per quantity, with its
own random walk, so two simulated thermometers would disagree by degrees.  In a real
cabinet a BME280 and an SHT3x measure the same air: :meth:`Environment.adopt` makes every
later signal of a quantity follow the first one's truth, while each keeps its own
sensor noise and its own faults (so a drift fault on one makes them disagree).
"""

from __future__ import annotations

from collections.abc import Mapping

from edge_drivers.sim.signals import Signal


class Environment:
    """The shared truths of one simulated place, by quantity name."""

    def __init__(self) -> None:
        self._leaders: dict[str, Signal] = {}

    def adopt(self, signals: Mapping[str, Signal]) -> None:
        """Make each signal follow the first signal adopted under the same quantity name."""
        for name, signal in signals.items():
            leader = self._leaders.setdefault(name, signal)
            if leader is not signal:
                signal.follow(leader)
