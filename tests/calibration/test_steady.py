"""When the wizard takes a point: the spread of the last readings against the sensor's noise."""

from __future__ import annotations

import math
import random

import pytest

from edge_agent.calibration.steady import min_separation, noise_estimate, spread_std, steadiness


def test_not_steady_until_the_window_is_full() -> None:
    s = steadiness([20.0, 20.0], window=5)
    assert not s.steady and math.isnan(s.spread)


def test_white_noise_is_steady_and_a_drift_is_not() -> None:
    rng = random.Random(7)
    noise = [20.0 + rng.gauss(0, 0.01) for _ in range(5)]
    steady = steadiness(noise, window=5)
    assert steady.steady and steady.noise_source == "estimated"
    assert steady.noise == pytest.approx(noise_estimate(noise))
    # The same noise on a drift of 0.05 per reading (a sensor still warming up).
    drifting = [v + 0.05 * i for i, v in enumerate(noise)]
    moving = steadiness(drifting, window=5)
    assert not moving.steady and moving.spread > moving.limit


def test_the_configured_noise_sets_the_limit() -> None:
    values = [20.0, 20.1, 20.2, 20.3, 20.35]
    assert not steadiness(values, window=5).steady  # a drift by its own estimate
    s = steadiness(values, window=5, configured_noise=0.1)
    assert s.steady and s.limit == pytest.approx(0.4) and s.noise_source == "config"


def test_a_sensor_that_repeats_exactly_is_steady() -> None:
    assert steadiness([1.5] * 4, window=3).steady


def test_spread_and_separation_worked_examples() -> None:
    assert spread_std([1.0, 2.0, 3.0]) == pytest.approx(1.0)
    assert spread_std([5.0]) == 0.0
    # σ 0.1 °C: two points 14.1 °C apart fix the gain to 1 %.
    assert min_separation(0.1) == pytest.approx(14.142, rel=1e-4)
