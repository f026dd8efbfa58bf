"""Calibration arithmetic, with worked examples."""

from __future__ import annotations

import math

import pytest

from edge_agent.calibration.fit import (
    CalibrationInputError,
    Correction,
    Point,
    expanded_uncertainty,
    fit,
    fit_linear,
    fit_offset,
    fit_points,
)


def test_one_point_offset_worked_example() -> None:
    # The sensor reads 21.30 °C where the reference thermometer reads 21.00 °C.
    method, c = fit([Point(reading=21.30, reference=21.00)])
    assert method == "offset"
    assert c.gain == 1.0
    assert c.offset == pytest.approx(-0.30)
    assert c.apply(21.30) == pytest.approx(21.00)
    assert c.apply(25.00) == pytest.approx(24.70)  # the same shift everywhere


def test_two_point_linear_worked_example() -> None:
    # Ice bath: reads 10.4 for 10.0; warm bath: reads 30.8 for 30.0.
    method, c = fit([Point(10.4, 10.0), Point(30.8, 30.0)])
    assert method == "linear"
    assert c.gain == pytest.approx(20 / 20.4)  # 0.980392…
    assert c.offset == pytest.approx(10.0 - (20 / 20.4) * 10.4)  # −0.196078…
    assert c.apply(10.4) == pytest.approx(10.0)
    assert c.apply(30.8) == pytest.approx(30.0)
    assert c.apply(20.6) == pytest.approx(20.0)  # midpoint maps to the midpoint
    assert c.invert(c.apply(17.0)) == pytest.approx(17.0)  # the cloud recovers raw values


def test_two_points_in_either_order_give_the_same_line() -> None:
    a = fit_linear(Point(10.4, 10.0), Point(30.8, 30.0))
    b = fit_linear(Point(30.8, 30.0), Point(10.4, 10.0))
    assert a.gain == pytest.approx(b.gain) and a.offset == pytest.approx(b.offset)


def test_identical_reference_points_are_refused() -> None:
    with pytest.raises(CalibrationInputError, match="two reference values are identical"):
        fit_linear(Point(10.0, 20.0), Point(11.0, 20.0))


def test_a_sensor_that_does_not_respond_is_refused() -> None:
    with pytest.raises(CalibrationInputError, match="read the same value"):
        fit_linear(Point(15.0, 10.0), Point(15.0, 30.0))


@pytest.mark.parametrize(
    ("r2", "ok"), [(19.0, False), (14.9, False), (20.0, True), (30.0, True), (50.0, True), (60.0, False)]
)
def test_gain_must_be_sane(r2: float, ok: bool) -> None:
    # References 10 and 30; readings 10 and r2 → gain 20 / (r2 − 10); sane is 0.5 … 2.
    if ok:
        assert 0.5 <= fit_linear(Point(10.0, 10.0), Point(r2, 30.0)).gain <= 2.0
    else:
        with pytest.raises(CalibrationInputError, match="outside the sane range"):
            fit_linear(Point(10.0, 10.0), Point(r2, 30.0))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_refused(bad: float) -> None:
    with pytest.raises(CalibrationInputError, match="finite"):
        fit_offset(Point(bad, 1.0))
    with pytest.raises(CalibrationInputError, match="finite"):
        fit_linear(Point(1.0, 1.0), Point(2.0, bad))


def test_point_count() -> None:
    with pytest.raises(CalibrationInputError):
        fit([])
    assert Correction().is_identity


def test_three_points_least_squares_worked_example() -> None:
    # Baths at 0, 20 and 40 °C; the sensor reads 0.5, 20.3, 40.7 (a slight span error and
    # a little scatter).  Least squares: mean reading 20.5, mean reference 20;
    # Sxx = 20² + 0.2² + 20.2² = 808.08, Sxy = (−20)(−20) + (−0.2)(0) + (20.2)(20) = 804
    # → gain 804 / 808.08 = 0.994951…, offset 20 − gain · 20.5 = −0.396496…
    result = fit_points([Point(0.5, 0.0), Point(20.3, 20.0), Point(40.7, 40.0)])
    assert result.method == "linear"
    assert result.correction.gain == pytest.approx(804 / 808.08)
    assert result.correction.offset == pytest.approx(20 - 804 / 808.08 * 20.5)
    # Residuals (corrected − reference) sum to zero and show the middle point's scatter.
    assert sum(result.residuals) == pytest.approx(0.0, abs=1e-12)
    assert result.residuals[1] == pytest.approx(result.correction.apply(20.3) - 20.0)
    assert result.residual_std == pytest.approx(math.sqrt(sum(r * r for r in result.residuals) / 1))
    assert fit([Point(0.5, 0.0), Point(20.3, 20.0), Point(40.7, 40.0)])[1] == result.correction


def test_two_points_by_least_squares_are_the_exact_line() -> None:
    exact = fit_linear(Point(10.4, 10.0), Point(30.8, 30.0))
    result = fit_points([Point(10.4, 10.0), Point(30.8, 30.0)])
    assert result.correction == exact and result.residuals == (0.0, 0.0) and result.residual_std is None


def test_a_point_out_of_line_is_refused_and_named() -> None:
    good = [Point(0.0 + e, 0.0) for e in (0.02,)] + [Point(10.0 - 0.01, 10.0), Point(20.0 + 0.01, 20.0)]
    bad = [*good, Point(32.0, 30.0)]  # 2 °C off where the others agree within 0.02
    with pytest.raises(CalibrationInputError, match=r"point 4 is out of line"):
        fit_points(bad)
    # The same four points pass when the points' own noise explains the scatter.
    assert fit_points(bad, noise=1.0).method == "linear"
    # In line: five points scattered evenly.
    fine = [Point(x + d, x) for x, d in ((0, 0.02), (10, -0.03), (20, 0.01), (30, 0.02), (40, -0.02))]
    assert len(fit_points(fine).residuals) == 5


def test_three_identical_references_or_readings_are_refused() -> None:
    with pytest.raises(CalibrationInputError, match="reference values are identical"):
        fit_points([Point(1, 5), Point(2, 5), Point(3, 5)])
    with pytest.raises(CalibrationInputError, match="read the same value"):
        fit_points([Point(7, 1), Point(7, 2), Point(7, 3)])


def test_expanded_uncertainty_worked_example() -> None:
    # Reference thermometer certificate: U = 0.10 °C (k = 2) → u = 0.05.  The sensor's
    # spread (standard deviation) 0.02 and 0.03 at the two points; gain 1.
    # U = 2 · √(0.05² + 0.03²) = 2 · 0.0583095… = 0.116619…
    assert expanded_uncertainty(1.0, 0.10, [0.02, 0.03]) == pytest.approx(2 * math.sqrt(0.05**2 + 0.03**2))
    # A least-squares fit's residual scatter adds in quadrature.
    assert expanded_uncertainty(1.0, 0.10, [0.03], 0.04) == pytest.approx(
        2 * math.sqrt(0.05**2 + 0.03**2 + 0.04**2)
    )
    # The spread is in the sensor's units: the gain carries it into corrected units.
    assert expanded_uncertainty(2.0, 0.0, [0.01]) == pytest.approx(0.04)
    with pytest.raises(CalibrationInputError, match="negative"):
        expanded_uncertainty(1.0, -0.1, [0.0])


@pytest.mark.parametrize(
    "points",
    [
        [Point(-1e308, 1e308)],  # one point: the offset overflowed to inf and was saved
        [Point(1e308, 1e308), Point(-1e308, -1e308)],
        [Point(1e308, 1e308), Point(-1e308, -1e308), Point(0.0, 0.0)],  # OverflowError, a traceback
        [Point(1e200, 1e200), Point(-1e200, -1e200), Point(0.0, 0.0)],
        [Point(1e155, 1e155), Point(-1e155, -1e155), Point(0.0, 0.0), Point(1.0, 1.0)],
    ],
)
def test_points_too_large_to_fit_are_refused_never_an_infinite_correction(points: list[Point]) -> None:
    for noise in (0.0, 0.1):
        with pytest.raises(CalibrationInputError):
            fit_points(points, noise=noise)


def test_the_same_reference_measured_twice_is_no_reason_to_call_another_point_out_of_line() -> None:
    """Repeating a point is good practice; the 'line' through two repeats is flat (gain 0) and
    judges nothing: point 3 was refused as 'out of line by -10'."""
    for points in (
        [Point(20.3, 20.0), Point(20.35, 20.0), Point(30.4, 30.0)],
        [Point(20.3, 20.0), Point(20.35, 20.0), Point(30.4, 30.0), Point(30.42, 30.0)],
    ):
        result = fit_points(points, noise=0.1)
        assert result.correction.gain == pytest.approx(1.0, abs=0.02)
    # A real outlier among repeats is still refused.
    with pytest.raises(CalibrationInputError, match="point 5 is out of line"):
        fit_points(
            [Point(10.3, 10.0), Point(10.32, 10.0), Point(20.3, 20.0), Point(20.31, 20.0), Point(33.3, 30.0)],
            noise=0.1,
        )
