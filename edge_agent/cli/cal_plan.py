"""What a calibration needs besides the points, and turning the points into a :class:`NewCalibration`.

Shared by the wizard (:mod:`.cal_wizard`) and the scripted ``calibrate --reference``:
the defaults the config implies (the validity a ``calibration_due`` test requires, the
noise a ``noise`` test declares normal), the units the driver declares, and the fit
with its uncertainty.  Values kept in the history are rounded to 10 significant digits
so float noise (``32.519999999999996``) never reaches a record or a certificate.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from edge_agent.calibration import ActiveCalibrations, Correction, NewCalibration, Point
from edge_agent.calibration.fit import Fit, expanded_uncertainty, fit_points
from edge_agent.sampling.hardware import Hardware
from edge_agent.settings import SensorSettings, Settings

DEFAULT_VALIDITY_S = 365 * 86400.0
"""Without a ``calibration_due`` test for the quantity: a year."""


def tidy(value: float) -> float:
    """``value`` without float noise: 10 significant digits, far below any sensor's resolution."""
    return float(f"{value:.10g}") if math.isfinite(value) else value


@dataclass
class Meta:
    """Who, with what, under which conditions, for how long (asked by the wizard or given as flags)."""

    technician: str | None = None
    validity_s: float | None = None
    instrument: str | None = None
    certificate: str | None = None
    reference_uncertainty: float | None = None
    """The reference's stated expanded uncertainty (k = 2), in the quantity's unit."""
    conditions: str | None = None
    note: str | None = None


@dataclass
class Measured:
    """The points so far, with the sensor's spread (standard deviation) at each."""

    points: list[Point] = field(default_factory=list)
    spreads: list[float] = field(default_factory=list)

    def add(self, reading: float, reference: float, spread: float) -> None:
        self.points.append(Point(reading, reference))
        self.spreads.append(spread)


def declared_order(hardware: Hardware, sensor: SensorSettings, reported: list[str]) -> list[str]:
    """``reported`` in the order the driver declares its quantities (its main one first)."""
    found = hardware.registry.get(sensor.driver)
    order = [q.name for q in found.spec.quantities] if found is not None else []
    rank = {name: i for i, name in enumerate(order)}
    return sorted(reported, key=lambda q: (rank.get(q, len(rank)), q))


def due_test(settings: Settings, sensor: str, quantity: str) -> tuple[str, float] | None:
    """The strictest ``calibration_due`` test covering the quantity: (name, max_age seconds)."""
    found = [
        (t.name, t.max_age)
        for t in settings.tests
        if t.kind == "calibration_due" and t.sensor == sensor and t.quantity in (None, quantity)
    ]
    return min(found, key=lambda f: f[1]) if found else None


def due_quantity(settings: Settings, sensor: str) -> str | None:
    """The quantity a ``calibration_due`` test names for the sensor (what is due first)."""
    for t in settings.tests:
        if t.kind == "calibration_due" and t.sensor == sensor and t.quantity:
            return t.quantity
    return None


def configured_noise(settings: Settings, sensor: str, quantity: str) -> tuple[str, float] | None:
    """A ``noise`` test's (name, max_std) for the sensor quantity: the noise declared normal."""
    for t in settings.tests:
        if t.kind == "noise" and t.sensor == sensor and t.quantity == quantity:
            return t.name, t.max_std
    return None


def default_validity(settings: Settings, sensor: str, quantity: str) -> float:
    due = due_test(settings, sensor, quantity)
    return due[1] if due else DEFAULT_VALIDITY_S


def build(
    sensor: str,
    quantity: str,
    measured: Measured,
    current: ActiveCalibrations,
    meta: Meta,
    *,
    noise: float = 0.0,
    now: float | None = None,
) -> tuple[NewCalibration, Fit]:
    """Fit the points and assemble the calibration; raises ``CalibrationInputError`` when it makes no sense.

    ``noise`` (σ of one reading) is the scatter a point may show without being out of line.
    """
    u_ref = (meta.reference_uncertainty or 0.0) / 2
    result = fit_points(measured.points, noise=math.hypot(noise, u_ref, max(measured.spreads, default=0.0)))
    before = current.for_sensor(sensor).get(quantity)
    before_corr = before.correction if before else Correction()
    uncertainty = (
        None
        if meta.reference_uncertainty is None
        else tidy(
            expanded_uncertainty(
                result.correction.gain, meta.reference_uncertainty, measured.spreads, result.residual_std
            )
        )
    )
    validity = meta.validity_s if meta.validity_s is not None else DEFAULT_VALIDITY_S
    new = NewCalibration(
        sensor=sensor,
        quantity=quantity,
        method=result.method,
        correction=result.correction,
        points=[Point(tidy(p.reading), tidy(p.reference)) for p in measured.points],
        as_found=[tidy(before_corr.apply(p.reading)) for p in measured.points],
        as_left=[tidy(result.correction.apply(p.reading)) for p in measured.points],
        reference_instrument=meta.instrument,
        technician=meta.technician,
        note=meta.note,
        expires_at=(time.time() if now is None else now) + validity,
        uncertainty=uncertainty,
        reference_uncertainty=meta.reference_uncertainty,
        reference_certificate=meta.certificate,
        spreads=[tidy(s) for s in measured.spreads],
        conditions=meta.conditions,
    )
    return new, result
