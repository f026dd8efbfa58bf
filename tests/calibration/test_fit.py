"""Calibration arithmetic, with worked examples."""

from __future__ import annotations

import math

import pytest

from edge_agent.calibration.fit import CalibrationInputError, Correction, Point, fit, fit_linear, fit_offset


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
    with pytest.raises(CalibrationInputError):
        fit([Point(1, 1), Point(2, 2), Point(3, 3)])
    assert Correction().is_identity
