"""The calibration database's schema and its migrations (``PRAGMA user_version``).

The calibration state is its own SQLite file (``calibration.db`` in the state dir), not
a table in the outbox: the outbox may be quarantined and replaced after corruption, and
a technician's calibration must survive that.

Every change is a new row, never an update: the table *is* the history.  The newest row
of a (sensor, quantity) is what applies now; ``applies = 0`` means no correction (after
a reset, or a rollback to before the first calibration).  ``previous`` links each row to
the one in effect before it, which is what a rollback returns to; ``change`` groups the
rows one command wrote.
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: tuple[str, ...] = (
    # 1: the history table.
    """
    CREATE TABLE calibrations (
        id                   INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: readings carry it
        sensor               TEXT NOT NULL,
        quantity             TEXT NOT NULL,
        action               TEXT NOT NULL CHECK (action IN ('calibrate', 'reset', 'rollback')),
        applies              INTEGER NOT NULL CHECK (applies IN (0, 1)),
        method               TEXT CHECK (method IS NULL OR method IN ('offset', 'linear')),
        gain                 REAL NOT NULL,
        offset               REAL NOT NULL,
        created_at           REAL NOT NULL,   -- Unix time of this change
        calibrated_at        REAL,            -- Unix time of the calibration in effect (NULL: none)
        expires_at           REAL,            -- Unix time it should be redone (NULL: no expiry)
        points               TEXT NOT NULL DEFAULT '[]',  -- JSON [{"reading": raw, "reference": v}]
        reference_instrument TEXT,
        as_found             TEXT NOT NULL DEFAULT '[]',  -- JSON: what the device reported at each point
        as_left              TEXT NOT NULL DEFAULT '[]',  -- JSON: what it reports with this correction
        technician           TEXT,
        note                 TEXT,
        previous             INTEGER REFERENCES calibrations(id),
        restores             INTEGER REFERENCES calibrations(id)
    );
    CREATE INDEX calibrations_by_sensor ON calibrations (sensor, quantity, id);
    """,
    # 2: rows written by one command (a sensor-wide reset or rollback) share ``change``,
    # the id of the command's first row, so that a rollback undoes the command whole.
    # NULL on rows from before: each was its own command.
    """
    ALTER TABLE calibrations ADD COLUMN change INTEGER REFERENCES calibrations(id);
    """,
    # 3: what a certificate needs (uncertainty, the reference's certificate, conditions)
    # and the as-left values measured after saving, in a table of their own: a saved
    # calibration row is never updated.
    """
    ALTER TABLE calibrations ADD COLUMN uncertainty REAL;            -- expanded (k = 2), quantity's unit
    ALTER TABLE calibrations ADD COLUMN reference_uncertainty REAL;  -- the reference's stated U (k = 2)
    ALTER TABLE calibrations ADD COLUMN reference_certificate TEXT;  -- the reference's certificate number
    ALTER TABLE calibrations ADD COLUMN spreads TEXT NOT NULL DEFAULT '[]';  -- JSON: sensor's std dev per point
    ALTER TABLE calibrations ADD COLUMN conditions TEXT;             -- e.g. "22 °C, 45 %RH, climate chamber"
    CREATE TABLE as_left_checks (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        calibration INTEGER NOT NULL REFERENCES calibrations(id),
        measured_at REAL NOT NULL,
        reference   REAL NOT NULL,   -- what the reference instrument read
        reading     REAL NOT NULL,   -- the sensor's raw mean
        reported    REAL NOT NULL,   -- what the device reports with the calibration applied
        spread      REAL             -- standard deviation of the readings averaged
    );
    CREATE INDEX as_left_by_calibration ON as_left_checks (calibration, id);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: sqlite3.Connection) -> int:
    """Bring the database to :data:`SCHEMA_VERSION`; returns the version found.

    Each step runs in its own transaction together with the new ``user_version``, so a
    power cut leaves the file at one version or the next, never in between.
    """
    found = int(db.execute("PRAGMA user_version").fetchone()[0])
    if found > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(
            f"schema version {found} is newer than this edge-agent understands ({SCHEMA_VERSION})"
        )
    for version in range(found, SCHEMA_VERSION):
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[version].split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {version + 1}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return found
