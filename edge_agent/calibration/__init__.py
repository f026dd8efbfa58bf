"""Sensor calibration: fitting corrections, their history in SQLite, applying them to readings.

- :mod:`.fit`    — pure arithmetic: one-point offset, two-point gain and offset, least squares
  through more, a point out of line, the expanded uncertainty, sanity checks;
- :mod:`.steady` — when a reading is steady enough to take (its spread against the noise);
- :mod:`.schema` — the database schema and its migrations;
- :mod:`.store`  — :class:`CalibrationStore`: the full history, save / reset / rollback;
- :mod:`.active` — :class:`ActiveCalibrations`: the corrections in effect, applied to readings;
- :mod:`.watch`  — the daemon reloads corrections when the CLI commits a change.
- :mod:`.certificate` — the one-page PDF certificate (fpdf2, the ``certificate`` extra).
"""

from edge_agent.calibration.active import CAL_KEY, ActiveCalibrations
from edge_agent.calibration.fit import CalibrationInputError, Correction, Point, fit
from edge_agent.calibration.store import (
    CALIBRATION_FILE,
    CalibrationRecord,
    CalibrationStore,
    CalibrationStoreError,
    NewCalibration,
)

__all__ = [
    "CALIBRATION_FILE",
    "CAL_KEY",
    "ActiveCalibrations",
    "CalibrationInputError",
    "CalibrationRecord",
    "CalibrationStore",
    "CalibrationStoreError",
    "Correction",
    "NewCalibration",
    "Point",
    "fit",
]
