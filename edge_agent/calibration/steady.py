"""When is a reading steady enough to calibrate against?  Pure arithmetic on the last N readings.

A sensor just moved into a bath or a chamber drifts towards the new condition for a
while; a reading taken then is wrong by the drift.  The wizard takes a point only when
the *spread* (max − min) of the last ``window`` readings is at most
:data:`STEADY_FACTOR` times the sensor's noise σ:

* σ is the config's ``noise`` test ``max_std`` for that sensor quantity when there is
  one (the noise the operator has declared normal), otherwise it is estimated from the
  readings themselves by the successive differences, ``σ ≈ √(mean(Δ²) / 2)``, which a
  slow drift hardly moves;
* for white noise the range of 5 readings exceeds 4 σ in about 2 % of windows, while a
  steady drift never passes: its range grows with the window and its differences don't.

The same σ says how far apart two points should be: the gain of a two-point fit is
off by about ``√2 · σ / Δ``, so the wizard asks for ``Δ ≥ √2 · σ / GAIN_PRECISION``.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

STEADY_FACTOR = 4.0
MIN_WINDOW = 3
GAIN_PRECISION = 0.01
"""The gain a two-point calibration should determine to (1 %)."""


@dataclass(frozen=True)
class Steadiness:
    steady: bool
    spread: float
    """max − min of the window (NaN until it is full)."""
    limit: float
    noise: float
    """The σ the limit came from."""
    noise_source: str
    """``"config"`` (a noise test's max_std) or ``"estimated"``."""


def noise_estimate(values: Sequence[float]) -> float:
    """σ from successive differences (insensitive to a slow drift); 0 for fewer than two values."""
    diffs = [b - a for a, b in itertools.pairwise(values)]
    if not diffs:
        return 0.0
    return math.sqrt(math.fsum(d * d for d in diffs) / len(diffs) / 2)


def steadiness(values: Sequence[float], window: int, configured_noise: float | None = None) -> Steadiness:
    """Whether the last ``window`` values are steady (see the module doc)."""
    window = max(window, MIN_WINDOW)
    recent = list(values)[-window:]
    if configured_noise is not None and configured_noise > 0:
        noise, source = configured_noise, "config"
    else:
        noise, source = noise_estimate(recent), "estimated"
    limit = STEADY_FACTOR * noise
    if len(recent) < window:
        return Steadiness(False, math.nan, limit, noise, source)
    spread = max(recent) - min(recent)
    # A sensor that repeats to the last bit (a simulator, a coarse ADC) has σ = 0: steady.
    tolerance = 1e-12 * max(1.0, abs(recent[-1]))
    return Steadiness(spread <= limit + tolerance, spread, limit, noise, source)


def spread_std(values: Sequence[float]) -> float:
    """The standard deviation of the readings averaged at a point (0 for one reading)."""
    return statistics.stdev(values) if len(values) >= 2 else 0.0


def min_separation(noise: float) -> float:
    """How far apart two points should be for the gain to be known to :data:`GAIN_PRECISION`."""
    return math.sqrt(2) * noise / GAIN_PRECISION
