"""The running daemon picks up calibrations saved by the CLI without a restart.

Every :data:`POLL_S` seconds, off the event loop, the watcher asks SQLite for
``PRAGMA data_version`` (which changes when another connection commits); when it
changed, it reloads the corrections in effect into :class:`ActiveCalibrations` and
reports each (sensor, quantity) whose correction changed, so the daemon can say so in
a ``status`` event.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable

from edge_agent.calibration.active import ActiveCalibrations
from edge_agent.calibration.store import CalibrationRecord, CalibrationStore, CalibrationStoreError

log = logging.getLogger(__name__)

POLL_S = 2.0

Changed = Callable[[list[CalibrationRecord]], Awaitable[object]]
"""Called with the newest history rows of the quantities whose correction changed."""


async def watch_calibrations(
    store: CalibrationStore, active: ActiveCalibrations, on_change: Changed, *, poll_s: float = POLL_S
) -> None:
    """Keep ``active`` in step with the database until cancelled."""
    # No version yet: the first poll always compares the database with what is in effect,
    # so a calibration saved between building ``active`` and starting this task is not missed.
    version: int | None = None
    problem: str | None = None
    while True:
        await asyncio.sleep(poll_s)
        try:
            now = await asyncio.to_thread(store.data_version)
            if now == version:
                continue
            current = await asyncio.to_thread(store.current)
        except (sqlite3.Error, CalibrationStoreError, OSError) as exc:  # keep the last good corrections
            if str(exc) != problem:
                log.error("calibration database unreadable, keeping the corrections in effect: %s", exc)
            problem = str(exc)
            continue
        if problem is not None:
            log.info("calibration database readable again")
            problem = None
        version = now
        in_effect = {(r.sensor, r.quantity): r.id for r in active.records()}
        changed = [
            r for r in current if in_effect.get((r.sensor, r.quantity)) != (r.id if r.applies else None)
        ]
        active.replace(current)
        if changed:
            for r in changed:
                log.info(
                    "calibration %s of %s.%s now in effect (%s: gain %.6g, offset %.6g)",
                    r.id,
                    r.sensor,
                    r.quantity,
                    r.action,
                    r.gain,
                    r.offset,
                )
            await on_change(changed)
