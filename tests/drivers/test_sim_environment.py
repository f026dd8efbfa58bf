"""Simulated sensors in one room see the same truth; each keeps its own noise and faults."""

from __future__ import annotations

import pytest

from edge_drivers.clock import ManualClock
from edge_drivers.sim import Environment, Signal


def test_followers_share_the_truth_but_not_the_faults() -> None:
    clock = ManualClock()
    a = Signal(21.0, amplitude=1.5, walk=0.05, seed=1, clock=clock)
    b = Signal(25.0, amplitude=3.0, walk=0.05, seed=2, clock=clock)
    room = Environment()
    room.adopt({"temperature_c": a})
    room.adopt({"temperature_c": b})
    for _ in range(5):
        clock.advance(37.0)
        assert b.sample() == pytest.approx(a.true_value())
    b.set_faults(drift_per_s=0.1)
    clock.advance(10.0)
    assert b.sample() - a.true_value() == pytest.approx(1.0)
    assert a.sample() == pytest.approx(a.true_value())  # the leader is unaffected


def test_a_follower_cannot_lead() -> None:
    a, b, c = Signal(1.0), Signal(2.0), Signal(3.0)
    b.follow(a)
    with pytest.raises(ValueError):
        c.follow(b)
