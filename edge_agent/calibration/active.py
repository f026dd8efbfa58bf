"""The corrections in effect, held in memory and applied to readings.

The sampler's hot path must not touch SQLite: :class:`ActiveCalibrations` is a plain
dict refreshed by the watcher when the database changes, and :meth:`apply` is a few
multiplications.  A corrected reading carries the ids of the calibrations applied in
its ``data`` under :data:`CAL_KEY`, so the cloud can recover the raw value with the
record (``raw = (value − offset) / gain``).

Order, for one reading (docs/PROTOCOL.md, "Calibration"):

1. each measured quantity gets its own correction;
2. quantities the driver computes from others (the ADS1115's ``water_level_m`` scaled from
   ``ain0_voltage_v``) are computed again from the corrected inputs, so they follow;
3. a derived quantity's own correction, if it has one, applies to that result;
4. published values are rounded to the decimal place of the sensor's resolution (or to 12
   significant digits when the driver states none): no ``22.601999999999997``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from edge_agent.calibration.store import CalibrationRecord
from edge_drivers.api import DerivesQuantities, Quantity

Derive = Callable[[Mapping[str, float]], Mapping[str, float | None]]
"""A driver's :meth:`~edge_drivers.api.DerivesQuantities.derive`."""

CAL_KEY = "cal"
"""Key of ``{quantity: calibration id}`` in a reading's ``data``; absent when nothing applied."""


class ActiveCalibrations:
    """Which correction applies to each (sensor, quantity) right now."""

    def __init__(self, records: Iterable[CalibrationRecord] = ()) -> None:
        self._by_sensor: dict[str, dict[str, CalibrationRecord]] = {}
        self.replace(records)

    def replace(self, records: Iterable[CalibrationRecord]) -> None:
        by_sensor: dict[str, dict[str, CalibrationRecord]] = {}
        for r in records:
            if r.applies:
                by_sensor.setdefault(r.sensor, {})[r.quantity] = r
        self._by_sensor = by_sensor  # one assignment: readers never see half an update

    def records(self) -> list[CalibrationRecord]:
        return [r for by_q in self._by_sensor.values() for r in by_q.values()]

    def for_sensor(self, sensor: str) -> dict[str, CalibrationRecord]:
        return dict(self._by_sensor.get(sensor, {}))

    def apply(
        self, sensor: str, values: Mapping[str, float], derive: Derive | None = None
    ) -> tuple[dict[str, float], dict[str, int]]:
        """Corrected values and ``{quantity: calibration id}`` of the corrections used (steps 1–3)."""
        records = self._by_sensor.get(sensor)
        if not records:
            return dict(values), {}
        derived = set(derive(values)) if derive is not None else set()
        out = dict(values)
        ids: dict[str, int] = {}

        def correct(quantity: str) -> None:
            record = records.get(quantity)
            if record is not None and quantity in out:
                out[quantity] = record.gain * out[quantity] + record.offset
                ids[quantity] = record.id

        for quantity in [q for q in values if q not in derived]:
            correct(quantity)
        if derive is not None and ids:
            for quantity, value in derive(out).items():
                if value is None:
                    out.pop(quantity, None)  # the corrected input is out of range: left out, as read() does
                else:
                    out[quantity] = value
        for quantity in derived:
            correct(quantity)
        return out, ids

    def reading_data(
        self, sensor: str, *, derive: Derive | None = None, resolutions: Mapping[str, float] | None = None
    ) -> Callable[[Mapping[str, float]], dict[str, Any]]:
        """The sampler's transform for one sensor: corrected, rounded values plus ``cal`` ids."""
        steps = resolutions or {}

        def transform(values: Mapping[str, float]) -> dict[str, Any]:
            corrected, ids = self.apply(sensor, values, derive)
            data: dict[str, Any] = {q: rounded(v, steps.get(q)) for q, v in corrected.items()}
            if ids:
                data[CAL_KEY] = ids
            return data

        return transform

    def driver_data(
        self, sensor: str, driver: object, quantities: Iterable[Quantity]
    ) -> Callable[[Mapping[str, float]], dict[str, Any]]:
        """:meth:`reading_data` for an opened driver and its declared quantities."""
        return self.reading_data(
            sensor,
            derive=driver.derive if isinstance(driver, DerivesQuantities) else None,
            resolutions={q.name: q.resolution for q in quantities if q.resolution},
        )


def rounded(value: float, resolution: float | None) -> float:
    """``value`` to the decimal place of ``resolution`` (12 significant digits without one).

    The decimal place, not a multiple of the step: 0.18 Pa keeps one decimal, so no
    information is lost and no new binary noise appears.  Integers pass unchanged.
    """
    if not isinstance(value, float) or not math.isfinite(value):
        return value
    if resolution is None or resolution <= 0:
        return float(f"{value:.12g}")
    return round(value, max(0, math.ceil(-math.log10(resolution) - 1e-9)))
