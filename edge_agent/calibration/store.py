"""The device's calibration history in SQLite (``calibration.db`` in the state dir).

Writers are the field CLI (``edge-agent calibrate``, ``calibration reset|rollback``);
the reader is the daemon, which notices a commit through ``PRAGMA data_version`` and
reloads the corrections in effect (:mod:`edge_agent.calibration.watch`).  WAL mode lets
both work at once; every change is one ``BEGIN IMMEDIATE`` transaction.

The calls are blocking: the daemon runs them off the event loop.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from edge_agent.calibration.fit import CalibrationInputError, Correction, Method, Point
from edge_agent.calibration.schema import migrate
from edge_agent.errors import EdgeAgentError

CALIBRATION_FILE = "calibration.db"

Action = Literal["calibrate", "reset", "rollback"]


class CalibrationStoreError(EdgeAgentError):
    """The calibration database cannot be opened or used (corrupt, unreadable, too new)."""


@dataclass(frozen=True)
class NewCalibration:
    """What a technician's calibration consists of, before it is saved."""

    sensor: str
    quantity: str
    method: Method
    correction: Correction
    points: Sequence[Point]
    as_found: Sequence[float]
    """What the device reported at each point before (raw with the old correction)."""
    as_left: Sequence[float]
    """What it reports at each point with the new correction."""
    reference_instrument: str | None = None
    technician: str | None = None
    note: str | None = None
    expires_at: float | None = None
    uncertainty: float | None = None
    """Expanded uncertainty (k = 2) of a calibrated reading, in the quantity's unit."""
    reference_uncertainty: float | None = None
    """The reference instrument's stated expanded uncertainty (k = 2)."""
    reference_certificate: str | None = None
    spreads: Sequence[float] = ()
    """The sensor's standard deviation at each point (what it repeats to)."""
    conditions: str | None = None


@dataclass(frozen=True)
class AsLeftCheck:
    """The sensor re-measured against the reference after a calibration was saved."""

    calibration: int
    measured_at: float
    reference: float
    reading: float
    reported: float
    spread: float | None

    def as_json(self) -> dict[str, Any]:
        return {
            "measured_at": self.measured_at,
            "reference": self.reference,
            "reading": self.reading,
            "reported": self.reported,
            "spread": self.spread,
        }


@dataclass(frozen=True)
class CalibrationRecord:
    """One row of the history: a change to the correction of one sensor quantity."""

    id: int
    sensor: str
    quantity: str
    action: Action
    applies: bool
    """False: no correction from this change on (reset, or rolled back to before the first)."""
    method: Method | None
    gain: float
    offset: float
    created_at: float
    calibrated_at: float | None
    expires_at: float | None
    points: list[Point] = field(default_factory=list)
    reference_instrument: str | None = None
    as_found: list[float] = field(default_factory=list)
    as_left: list[float] = field(default_factory=list)
    technician: str | None = None
    note: str | None = None
    previous: int | None = None
    restores: int | None = None
    change: int | None = None
    """The first row of the command that wrote this one (None: this row is the first)."""
    uncertainty: float | None = None
    reference_uncertainty: float | None = None
    reference_certificate: str | None = None
    spreads: list[float] = field(default_factory=list)
    conditions: str | None = None

    @property
    def correction(self) -> Correction:
        return Correction(self.gain, self.offset)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "sensor": self.sensor,
            "quantity": self.quantity,
            "action": self.action,
            "applies": self.applies,
            "method": self.method,
            "gain": self.gain,
            "offset": self.offset,
            "created_at": self.created_at,
            "calibrated_at": self.calibrated_at,
            "expires_at": self.expires_at,
            "points": [{"reading": p.reading, "reference": p.reference} for p in self.points],
            "reference_instrument": self.reference_instrument,
            "as_found": self.as_found,
            "as_left": self.as_left,
            "technician": self.technician,
            "note": self.note,
            "previous": self.previous,
            "restores": self.restores,
            "change": self.change,
            "uncertainty": self.uncertainty,
            "reference_uncertainty": self.reference_uncertainty,
            "reference_certificate": self.reference_certificate,
            "spreads": self.spreads,
            "conditions": self.conditions,
        }


_COLUMNS = (
    "id, sensor, quantity, action, applies, method, gain, offset, created_at, calibrated_at, "
    "expires_at, points, reference_instrument, as_found, as_left, technician, note, previous, restores, change, "
    "uncertainty, reference_uncertainty, reference_certificate, spreads, conditions"
)


def _certificate_columns(record: CalibrationRecord) -> dict[str, Any]:
    """What a rollback row copies besides the correction, so the restored calibration keeps
    its uncertainty and certificate details."""
    return {
        "uncertainty": record.uncertainty,
        "reference_uncertainty": record.reference_uncertainty,
        "reference_certificate": record.reference_certificate,
        "spreads": json.dumps(record.spreads),
        "conditions": record.conditions,
    }


def _record(row: sqlite3.Row) -> CalibrationRecord:
    return CalibrationRecord(
        id=row["id"],
        sensor=row["sensor"],
        quantity=row["quantity"],
        action=row["action"],
        applies=bool(row["applies"]),
        method=row["method"],
        gain=row["gain"],
        offset=row["offset"],
        created_at=row["created_at"],
        calibrated_at=row["calibrated_at"],
        expires_at=row["expires_at"],
        points=[Point(p["reading"], p["reference"]) for p in json.loads(row["points"])],
        reference_instrument=row["reference_instrument"],
        as_found=list(json.loads(row["as_found"])),
        as_left=list(json.loads(row["as_left"])),
        technician=row["technician"],
        note=row["note"],
        previous=row["previous"],
        restores=row["restores"],
        change=row["change"],
        uncertainty=row["uncertainty"],
        reference_uncertainty=row["reference_uncertainty"],
        reference_certificate=row["reference_certificate"],
        spreads=list(json.loads(row["spreads"])),
        conditions=row["conditions"],
    )


class CalibrationStore:
    """The calibration history; one connection, used from one thread at a time."""

    def __init__(self, db: sqlite3.Connection, path: Path, wall: Callable[[], float]) -> None:
        self._db = db
        self.path = path
        self._wall = wall

    @classmethod
    def open(cls, path: Path, *, wall: Callable[[], float] = time.time) -> CalibrationStore:
        """Open (creating and migrating as needed) the database at ``path``."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
        except (OSError, sqlite3.Error) as exc:
            raise CalibrationStoreError(f"cannot open the calibration database {path}: {exc}") from exc
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")  # a saved calibration survives a power cut
            db.execute("PRAGMA foreign_keys = ON")
            migrate(db)
        except sqlite3.Error as exc:
            db.close()
            raise CalibrationStoreError(
                f"the calibration database {path} cannot be used: {exc}; move it aside to start a "
                "new history (the old file keeps the old one)"
            ) from exc
        return cls(db, path, wall)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> CalibrationStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading --------------------------------------------------------------------------

    def data_version(self) -> int:
        """Changes whenever another connection commits (cheap; polled by the daemon)."""
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def get(self, record_id: int) -> CalibrationRecord | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM calibrations WHERE id = ?", (record_id,)).fetchone()
        return None if row is None else _record(row)

    def history(self, sensor: str, quantity: str | None = None) -> list[CalibrationRecord]:
        """Every change for the sensor (or one quantity), oldest first."""
        sql = f"SELECT {_COLUMNS} FROM calibrations WHERE sensor = ?"
        args: tuple[str, ...] = (sensor,)
        if quantity is not None:
            sql += " AND quantity = ?"
            args += (quantity,)
        return [_record(r) for r in self._db.execute(sql + " ORDER BY id", args)]

    def current(self, sensor: str | None = None) -> list[CalibrationRecord]:
        """The newest change of every (sensor, quantity), whether it applies a correction or not."""
        sql = (
            f"SELECT {_COLUMNS} FROM calibrations WHERE id IN "
            "(SELECT max(id) FROM calibrations GROUP BY sensor, quantity)"
        )
        args: tuple[str, ...] = ()
        if sensor is not None:
            sql += " AND sensor = ?"
            args = (sensor,)
        return [_record(r) for r in self._db.execute(sql + " ORDER BY sensor, quantity", args)]

    def active(self, sensor: str | None = None) -> list[CalibrationRecord]:
        """The corrections in effect now (one per calibrated sensor quantity)."""
        return [r for r in self.current(sensor) if r.applies]

    def _head(self, sensor: str, quantity: str) -> CalibrationRecord | None:
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM calibrations WHERE sensor = ? AND quantity = ? ORDER BY id DESC LIMIT 1",
            (sensor, quantity),
        ).fetchone()
        return None if row is None else _record(row)

    # -- changing -------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise CalibrationStoreError(f"cannot write the calibration database {self.path}: {exc}") from exc
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._db.execute("ROLLBACK")
            raise CalibrationStoreError(f"cannot commit to {self.path}: {exc}") from exc

    def save(self, new: NewCalibration) -> CalibrationRecord:
        """Record a calibration; it applies from now on (the daemon picks it up by itself)."""
        now = self._wall()
        with self._transaction() as db:
            head = self._head(new.sensor, new.quantity)
            return self._insert(
                db,
                sensor=new.sensor,
                quantity=new.quantity,
                action="calibrate",
                applies=True,
                method=new.method,
                gain=new.correction.gain,
                offset=new.correction.offset,
                created_at=now,
                calibrated_at=now,
                expires_at=new.expires_at,
                points=json.dumps([{"reading": p.reading, "reference": p.reference} for p in new.points]),
                reference_instrument=new.reference_instrument,
                as_found=json.dumps(list(new.as_found)),
                as_left=json.dumps(list(new.as_left)),
                technician=new.technician,
                note=new.note,
                previous=None if head is None else head.id,
                restores=None,
                uncertainty=new.uncertainty,
                reference_uncertainty=new.reference_uncertainty,
                reference_certificate=new.reference_certificate,
                spreads=json.dumps(list(new.spreads)),
                conditions=new.conditions,
            )

    def record_as_left(
        self, calibration: int, *, reference: float, reading: float, reported: float, spread: float | None
    ) -> AsLeftCheck:
        """Keep what the sensor measured against the reference after ``calibration`` was saved."""
        now = self._wall()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO as_left_checks (calibration, measured_at, reference, reading, reported, spread) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (calibration, now, reference, reading, reported, spread),
            )
        return AsLeftCheck(calibration, now, reference, reading, reported, spread)

    def as_left_checks(self, calibration: int) -> list[AsLeftCheck]:
        """The as-left measurements of a calibration, oldest first."""
        rows = self._db.execute(
            "SELECT calibration, measured_at, reference, reading, reported, spread FROM as_left_checks "
            "WHERE calibration = ? ORDER BY id",
            (calibration,),
        )
        return [AsLeftCheck(*row) for row in rows]

    def reset(
        self,
        sensor: str,
        quantity: str | None = None,
        *,
        technician: str | None = None,
        note: str | None = None,
    ) -> list[CalibrationRecord]:
        """Stop correcting the quantity (or every calibrated quantity of the sensor)."""
        now = self._wall()
        with self._transaction() as db:
            targets = [r for r in self.current(sensor) if r.applies and quantity in (None, r.quantity)]
            if not targets:
                what = f"{sensor}.{quantity}" if quantity else sensor
                raise CalibrationInputError(f"{what} has no calibration in effect; nothing to reset")
            rows: list[CalibrationRecord] = []
            for head in targets:
                rows.append(
                    self._insert_uncorrected(
                        db,
                        sensor,
                        head.quantity,
                        "reset",
                        now,
                        technician,
                        note,
                        previous=head.id,
                        change=rows[0].id if rows else None,
                    )
                )
            return rows

    def rollback(
        self,
        sensor: str,
        quantity: str | None = None,
        *,
        technician: str | None = None,
        note: str | None = None,
    ) -> list[CalibrationRecord]:
        """Undo the newest change of the quantity (or the sensor's newest command, whole), as new rows.

        The correction in effect before that change applies again, for every quantity the
        command changed (a sensor-wide reset comes back whole).  Rolling back again goes
        one step further back for each of them, as an undo stack does.
        """
        now = self._wall()
        with self._transaction() as db:
            heads = [r for r in self.current(sensor) if quantity in (None, r.quantity)]
            if not heads:
                what = f"{sensor}.{quantity}" if quantity else sensor
                raise CalibrationInputError(f"{what} has no calibration history; nothing to roll back")
            newest = max(heads, key=lambda r: r.id)
            command = newest.change or newest.id
            targets = [r for r in heads if (r.change or r.id) == command]
            rows: list[CalibrationRecord] = []
            for head in targets:
                before = None if head.previous is None else self.get(head.previous)
                if before is None and not head.applies:
                    continue  # already back before its first calibration: nothing to undo
                rows.append(self._undo(db, head, before, now, technician, note, rows[0].id if rows else None))
            if not rows:
                what = f"{sensor}.{newest.quantity}" if len(targets) == 1 else sensor
                raise CalibrationInputError(
                    f"{what} has no earlier calibration to go back to (no correction applies now)"
                )
            return rows

    def _undo(
        self,
        db: sqlite3.Connection,
        head: CalibrationRecord,
        before: CalibrationRecord | None,
        now: float,
        technician: str | None,
        note: str | None,
        change: int | None,
    ) -> CalibrationRecord:
        """The row that puts ``before`` (None: no correction) back in place of ``head``."""
        if before is None:
            # Back to before the first calibration: no correction.
            return self._insert_uncorrected(
                db,
                head.sensor,
                head.quantity,
                "rollback",
                now,
                technician,
                note,
                previous=None,
                change=change,
            )
        return self._insert(
            db,
            sensor=head.sensor,
            quantity=head.quantity,
            action="rollback",
            applies=before.applies,
            method=before.method,
            gain=before.gain,
            offset=before.offset,
            created_at=now,
            calibrated_at=before.calibrated_at,
            expires_at=before.expires_at,
            points=json.dumps([{"reading": p.reading, "reference": p.reference} for p in before.points]),
            reference_instrument=before.reference_instrument,
            as_found=json.dumps(before.as_found),
            as_left=json.dumps(before.as_left),
            technician=technician,
            note=note,
            previous=before.previous,
            restores=(before.restores if before.action == "rollback" else before.id)
            if before.applies
            else None,
            change=change,
            **_certificate_columns(before),
        )

    def _insert_uncorrected(
        self,
        db: sqlite3.Connection,
        sensor: str,
        quantity: str,
        action: Action,
        now: float,
        technician: str | None,
        note: str | None,
        *,
        previous: int | None,
        change: int | None = None,
    ) -> CalibrationRecord:
        """A row after which the quantity goes out uncorrected (a reset, or a rollback past the first)."""
        return self._insert(
            db,
            sensor=sensor,
            quantity=quantity,
            action=action,
            applies=False,
            method=None,
            gain=1.0,
            offset=0.0,
            created_at=now,
            calibrated_at=None,
            expires_at=None,
            technician=technician,
            note=note,
            previous=previous,
            restores=None,
            change=change,
        )

    def _insert(self, db: sqlite3.Connection, **values: Any) -> CalibrationRecord:
        names = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        cursor = db.execute(f"INSERT INTO calibrations ({names}) VALUES ({marks})", tuple(values.values()))
        record = self.get(int(cursor.lastrowid or 0))
        assert record is not None
        return record
