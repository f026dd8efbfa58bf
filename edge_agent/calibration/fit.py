"""The arithmetic of a calibration: fitting a correction to reference points, and applying it.

A correction maps what the sensor reports (``raw``) to what it should have reported::

    corrected = gain · raw + offset

* one point  (``method = "offset"``): the sensor is off by a constant.  ``gain = 1``,
  ``offset = reference − reading``.  Example: the sensor reads 21.30 °C where the
  reference thermometer reads 21.00 °C → offset −0.30.
* two points (``method = "linear"``): both the slope and the zero are off.
  ``gain = (ref₂ − ref₁) / (reading₂ − reading₁)``, ``offset = ref₁ − gain · reading₁``.
  Example: 10.4 → 10.0 and 30.8 → 30.0 gives gain 20/20.4 = 0.98039…, offset −0.19608….

Pure functions: no I/O, no clock, so they are tested with worked examples.  A fit that
makes no physical sense (identical points, a gain outside :data:`GAIN_RANGE`, values
that are not finite numbers) raises :class:`CalibrationInputError` with a message the
technician can act on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from edge_agent.errors import EdgeAgentError

Method = Literal["offset", "linear"]

GAIN_RANGE = (0.5, 2.0)
"""A sensor whose span is off by more than a factor of two is broken, not out of calibration."""
MIN_POINT_SEPARATION = 1e-9
"""Readings or references closer than this count as the same point."""


class CalibrationInputError(EdgeAgentError, ValueError):
    """The reference points cannot give a sane correction; nothing is saved."""


@dataclass(frozen=True)
class Point:
    """One calibration point: what the sensor read (raw) and what the reference said."""

    reading: float
    reference: float


@dataclass(frozen=True)
class Correction:
    gain: float = 1.0
    offset: float = 0.0

    def apply(self, raw: float) -> float:
        return self.gain * raw + self.offset

    def invert(self, corrected: float) -> float:
        """The raw value a corrected one came from (what the cloud does with the id)."""
        return (corrected - self.offset) / self.gain

    @property
    def is_identity(self) -> bool:
        return self.gain == 1.0 and self.offset == 0.0


IDENTITY = Correction()


def _finite(value: float, what: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise CalibrationInputError(f"{what} must be a finite number, not {value!r}")
    return float(value)


def fit(points: list[Point]) -> tuple[Method, Correction]:
    """The correction through one point (offset) or two points (gain and offset)."""
    if len(points) == 1:
        (p,) = points
        return "offset", fit_offset(p)
    if len(points) == 2:
        return "linear", fit_linear(points[0], points[1])
    raise CalibrationInputError(f"a calibration uses one or two points, not {len(points)}")


def fit_offset(point: Point) -> Correction:
    reading = _finite(point.reading, "the sensor reading")
    reference = _finite(point.reference, "the reference value")
    return Correction(gain=1.0, offset=reference - reading)


def fit_linear(p1: Point, p2: Point) -> Correction:
    r1 = _finite(p1.reading, "the sensor reading at point 1")
    r2 = _finite(p2.reading, "the sensor reading at point 2")
    ref1 = _finite(p1.reference, "the reference value at point 1")
    ref2 = _finite(p2.reference, "the reference value at point 2")
    if abs(ref2 - ref1) < MIN_POINT_SEPARATION:
        raise CalibrationInputError(
            f"the two reference values are identical ({ref1:g}); a two-point calibration needs two "
            "different conditions (e.g. an ice bath and room temperature)"
        )
    if abs(r2 - r1) < MIN_POINT_SEPARATION:
        raise CalibrationInputError(
            f"the sensor read the same value ({r1:g}) at both points although the references differ: "
            "it does not respond (stuck?) — repair it rather than calibrate it"
        )
    gain = (ref2 - ref1) / (r2 - r1)
    check_gain(gain)
    return Correction(gain=gain, offset=ref1 - gain * r1)


def check_gain(gain: float) -> None:
    low, high = GAIN_RANGE
    if not low <= gain <= high:
        raise CalibrationInputError(
            f"the fitted gain {gain:.4g} is outside the sane range {low:g} … {high:g}: check the "
            "reference values and that the sensor really was at each reference point"
        )
