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

* three or more points (``method = "linear"`` too): the least-squares line through them.
  Each point's *residual* (corrected reading − reference) is shown to the technician.  A
  point that the line through the *other* points misses by more than
  :data:`OUTLIER_FACTOR` times their own scatter (or the points' noise, when larger) is
  out of line: the fit is refused, naming the point, rather than bent towards it.

**Uncertainty** (GUM, the usual root-sum-square of independent standard uncertainties).
The reference instrument's certificate states an *expanded* uncertainty ``U_ref`` at
k = 2, so its standard uncertainty is ``U_ref / 2``; the sensor's *spread* at a point is
the standard deviation of the readings taken there (one reading repeats that well); a
least-squares fit adds the standard deviation of its residuals (``n − 2`` degrees of
freedom).  The calibrated reading's expanded uncertainty is::

    U = 2 · √( (U_ref/2)² + (gain · max spread)² + s_fit² )

taking the worst point's spread, so it holds over the calibrated range.
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
OUTLIER_FACTOR = 4.0
"""A residual this many times the others' typical residual is out of line (see the module doc)."""
COVERAGE_K = 2.0
"""Coverage factor of an expanded uncertainty (about 95 % for a normal distribution)."""


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


@dataclass(frozen=True)
class Fit:
    """A fitted correction and how well it matches the points."""

    method: Method
    correction: Correction
    residuals: tuple[float, ...]
    """At each point: the corrected reading − the reference (0 for one or two points)."""
    residual_std: float | None
    """The residuals' standard deviation with ``n − 2`` degrees of freedom (three or more points)."""


def fit(points: list[Point]) -> tuple[Method, Correction]:
    """The correction through one point (offset), two points (gain and offset) or more (least squares)."""
    result = fit_points(points)
    return result.method, result.correction


def fit_points(points: list[Point], *, noise: float = 0.0) -> Fit:
    """:func:`fit` with the residuals; ``noise`` (a standard deviation, in the quantity's unit)
    is the scatter below which no residual counts as out of line."""
    if not points:
        raise CalibrationInputError("a calibration needs at least one point")
    if len(points) == 1:
        (p,) = points
        return Fit("offset", fit_offset(p), (0.0,), None)
    if len(points) == 2:
        return Fit("linear", fit_linear(points[0], points[1]), (0.0, 0.0), None)
    return fit_least_squares(points, noise=noise)


def fit_least_squares(points: list[Point], *, noise: float = 0.0) -> Fit:
    """The least-squares line through three or more points; refused when one is out of line."""
    xs = [_finite(p.reading, f"the sensor reading at point {i}") for i, p in enumerate(points, 1)]
    ys = [_finite(p.reference, f"the reference value at point {i}") for i, p in enumerate(points, 1)]
    n = len(points)
    if max(ys) - min(ys) < MIN_POINT_SEPARATION:
        raise CalibrationInputError(
            f"all {n} reference values are identical ({ys[0]:g}); the points need different conditions"
        )
    if max(xs) - min(xs) < MIN_POINT_SEPARATION:
        raise CalibrationInputError(
            f"the sensor read the same value ({xs[0]:g}) at all {n} points although the references "
            "differ: it does not respond (stuck?) — repair it rather than calibrate it"
        )
    correction, residuals, residual_std = _line(xs, ys)
    check_gain(correction.gain)
    check_out_of_line(xs, ys, noise)
    return Fit("linear", correction, residuals, residual_std)


def _line(xs: list[float], ys: list[float]) -> tuple[Correction, tuple[float, ...], float]:
    """Least squares: the correction, its residuals and their standard deviation (n − 2 dof)."""
    n = len(xs)
    try:
        mx, my = math.fsum(xs) / n, math.fsum(ys) / n
        sxx = math.fsum((x - mx) ** 2 for x in xs)
        gain = math.fsum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 1.0
        correction = _sane(Correction(gain=gain, offset=my - gain * mx))
        residuals = tuple(correction.apply(x) - y for x, y in zip(xs, ys, strict=True))
        dof = n - 2
        std = math.sqrt(math.fsum(r * r for r in residuals) / dof) if dof > 0 else 0.0
    except OverflowError:  # squares of values past ~1e154
        raise CalibrationInputError(_TOO_LARGE) from None
    if not all(math.isfinite(r) for r in (*residuals, std)):
        raise CalibrationInputError(_TOO_LARGE)
    return correction, residuals, std


_TOO_LARGE = (
    "the points are too large to fit (the arithmetic overflows): check the reference values and "
    "readings, no sensor reads anywhere near that"
)


def _sane(correction: Correction) -> Correction:
    """A correction that is finite numbers (an offset of 1e308 − (−1e308) is inf, saved it
    would turn every reading into inf, which has no wire form)."""
    if not (math.isfinite(correction.gain) and math.isfinite(correction.offset)):
        raise CalibrationInputError(_TOO_LARGE)
    return correction


def check_out_of_line(xs: list[float], ys: list[float], noise: float = 0.0) -> None:
    """Refuse a point that the line through the *other* points misses by more than
    :data:`OUTLIER_FACTOR` times their own scatter (or ``noise``, when larger).

    Leaving the point out first matters: a least-squares line leans towards a bad point
    and spreads its error over all the residuals, hiding it.  With three points and no
    ``noise`` figure the other two fit exactly and nothing says what scatter is normal: no
    point is judged.  Nor by others that draw no sane line (repeats of one reference: gain 0).
    """
    if len(xs) < 4 and noise <= 0:
        return
    worst: tuple[float, int, float, float] | None = None
    low, high = GAIN_RANGE
    for i in range(len(xs)):
        others_x, others_y = xs[:i] + xs[i + 1 :], ys[:i] + ys[i + 1 :]
        if max(others_y) - min(others_y) < MIN_POINT_SEPARATION:
            continue  # the others repeat one reference: they draw no line to judge by
        correction, _, scatter = _line(others_x, others_y)
        if not low <= correction.gain <= high:
            continue  # nor a line no calibration would accept (e.g. two repeats close together)
        miss = correction.apply(xs[i]) - ys[i]
        typical = max(scatter, noise, MIN_POINT_SEPARATION)
        ratio = abs(miss) / typical
        if worst is None or ratio > worst[0]:
            worst = (ratio, i, miss, typical)
    if worst is None:
        return
    ratio, i, miss, typical = worst
    if ratio > OUTLIER_FACTOR:
        raise CalibrationInputError(
            f"point {i + 1} is out of line with the others: the line through them misses it by "
            f"{miss:+.3g} where they scatter by {typical:.2g}; re-measure it, or leave it out"
        )


def expanded_uncertainty(
    gain: float, reference_u: float, spreads: list[float], residual_std: float | None = None
) -> float:
    """The calibrated reading's expanded uncertainty (k = 2) from the reference's stated
    expanded uncertainty, the sensor's spread at each point and the fit (see the module doc)."""
    u_ref = _finite(reference_u, "the reference's uncertainty") / COVERAGE_K
    if u_ref < 0:
        raise CalibrationInputError("the reference's uncertainty cannot be negative")
    u_sensor = abs(gain) * max((_finite(s, "a spread") for s in spreads), default=0.0)
    u_fit = residual_std or 0.0
    return COVERAGE_K * math.sqrt(u_ref**2 + u_sensor**2 + u_fit**2)


def fit_offset(point: Point) -> Correction:
    reading = _finite(point.reading, "the sensor reading")
    reference = _finite(point.reference, "the reference value")
    return _sane(Correction(gain=1.0, offset=reference - reading))


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
    return _sane(Correction(gain=gain, offset=ref1 - gain * r1))


def check_gain(gain: float) -> None:
    low, high = GAIN_RANGE
    if not low <= gain <= high:
        raise CalibrationInputError(
            f"the fitted gain {gain:.4g} is outside the sane range {low:g} … {high:g}: check the "
            "reference values and that the sensor really was at each reference point"
        )
