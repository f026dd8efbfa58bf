"""The corrections in effect, held in memory and applied to readings.

The sampler's hot path must not touch SQLite: :class:`ActiveCalibrations` is a plain
dict refreshed by the watcher when the database changes, and :meth:`apply` is a few
multiplications.  A corrected reading carries the ids of the calibrations applied in
its ``data`` under :data:`CAL_KEY`, so the cloud can recover the raw value with the
record (``raw = (value − offset) / gain``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from edge_agent.calibration.store import CalibrationRecord

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

    def apply(self, sensor: str, values: Mapping[str, float]) -> tuple[dict[str, float], dict[str, int]]:
        """Corrected values and ``{quantity: calibration id}`` of the corrections used."""
        records = self._by_sensor.get(sensor)
        if not records:
            return dict(values), {}
        out = dict(values)
        ids: dict[str, int] = {}
        for quantity, record in records.items():
            if quantity in out:
                out[quantity] = record.gain * out[quantity] + record.offset
                ids[quantity] = record.id
        return out, ids

    def reading_data(self, sensor: str) -> Callable[[Mapping[str, float]], dict[str, Any]]:
        """The sampler's transform for one sensor: corrected values plus ``cal`` ids."""

        def transform(values: Mapping[str, float]) -> dict[str, Any]:
            corrected, ids = self.apply(sensor, values)
            data: dict[str, Any] = dict(corrected)
            if ids:
                data[CAL_KEY] = ids
            return data

        return transform
