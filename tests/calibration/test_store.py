"""The calibration history: save, reset, rollback (as history), reopen, concurrent reader, bad files."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from pathlib import Path

import pytest

from edge_agent.calibration import (
    ActiveCalibrations,
    CalibrationInputError,
    CalibrationStore,
    CalibrationStoreError,
    NewCalibration,
    Point,
    fit,
)
from edge_agent.calibration.schema import MIGRATIONS, SCHEMA_VERSION
from edge_agent.calibration.watch import watch_calibrations


def new(offset_ref: float, quantity: str = "temperature_c", sensor: str = "climate") -> NewCalibration:
    points = [Point(20.0, offset_ref)]
    method, correction = fit(points)
    return NewCalibration(
        sensor=sensor,
        quantity=quantity,
        method=method,
        correction=correction,
        points=points,
        as_found=[20.0],
        as_left=[offset_ref],
        reference_instrument="Fluke 1524 s/n 42",
        technician="ana",
        note="after fan replacement",
        expires_at=2_000_000_000.0,
    )


def test_save_keeps_everything_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "calibration.db"
    with CalibrationStore.open(path, wall=lambda: 1_700_000_000.0) as store:
        saved = store.save(new(19.5))
    with CalibrationStore.open(path) as store:
        (r,) = store.active("climate")
    assert r == saved
    assert (r.action, r.method, r.gain, r.offset) == ("calibrate", "offset", 1.0, -0.5)
    assert r.points == [Point(20.0, 19.5)] and r.as_found == [20.0] and r.as_left == [19.5]
    assert (r.reference_instrument, r.technician, r.note) == (
        "Fluke 1524 s/n 42",
        "ana",
        "after fan replacement",
    )
    assert r.created_at == r.calibrated_at == 1_700_000_000.0 and r.expires_at == 2_000_000_000.0
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_rollback_and_reset_are_recorded_as_history(tmp_path: Path) -> None:
    with CalibrationStore.open(tmp_path / "c.db") as store:
        a = store.save(new(19.5))
        b = store.save(new(19.0))
        assert [r.id for r in store.active()] == [b.id]
        (back,) = store.rollback("climate")
        assert back.action == "rollback" and back.restores == a.id and back.offset == a.offset
        assert store.active()[0].id == back.id  # the rollback row is what readings carry
        (gone,) = store.rollback("climate")
        assert not gone.applies and store.active() == []
        with pytest.raises(CalibrationInputError, match="no earlier calibration"):
            store.rollback("climate")  # nothing further back: refused, not a no-op history row
        assert store.history("climate")[-1].id == gone.id
        with pytest.raises(CalibrationInputError, match="nothing to reset"):
            store.reset("climate")
        c = store.save(new(21.0))
        (reset,) = store.reset("climate", "temperature_c", technician="bo")
        assert reset.previous == c.id and store.active() == []
        (undo,) = store.rollback("climate", "temperature_c")
        assert undo.applies and undo.restores == c.id
        history = store.history("climate")
        assert [r.action for r in history] == [
            "calibrate", "calibrate", "rollback", "rollback", "calibrate", "reset", "rollback",
        ]  # fmt: skip
        assert len({r.id for r in history}) == len(history)


def test_nothing_to_roll_back(tmp_path: Path) -> None:
    with (
        CalibrationStore.open(tmp_path / "c.db") as store,
        pytest.raises(CalibrationInputError, match="no calibration history"),
    ):
        store.rollback("climate")


def test_reset_without_quantity_resets_every_quantity(tmp_path: Path) -> None:
    with CalibrationStore.open(tmp_path / "c.db") as store:
        store.save(new(19.5))
        store.save(new(45.0, quantity="relative_humidity_pct"))
        store.save(new(1.0, sensor="cabinet"))
        assert len(store.reset("climate")) == 2
        assert [r.sensor for r in store.active()] == ["cabinet"]


def test_rollback_undoes_a_sensor_wide_reset_whole(tmp_path: Path) -> None:
    """Issue 18 defect 2: only temperature came back, humidity needed ``-q``."""
    with CalibrationStore.open(tmp_path / "c.db") as store:
        t = store.save(new(19.5))
        h = store.save(new(45.0, quantity="relative_humidity_pct"))
        store.save(new(1.0, sensor="cabinet"))
        assert len(store.reset("climate")) == 2 and store.active("climate") == []
        back = store.rollback("climate")
        assert sorted((r.quantity, r.restores) for r in back) == [
            ("relative_humidity_pct", h.id),
            ("temperature_c", t.id),
        ]
        assert {r.id for r in store.active("climate")} == {r.id for r in back}
        # Undo again: each quantity the command touched goes one step further back.
        again = store.rollback("climate")
        assert len(again) == 2 and not any(r.applies for r in again)
        assert [r.sensor for r in store.active()] == ["cabinet"]
        with pytest.raises(CalibrationInputError, match="no earlier calibration"):
            store.rollback("climate")


def test_corrupt_or_newer_file_is_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CalibrationStoreError, match="cannot be used"):
        CalibrationStore.open(junk)
    newer = tmp_path / "newer.db"
    db = sqlite3.connect(newer)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(CalibrationStoreError, match="newer"):
        CalibrationStore.open(newer)


def test_active_calibrations_apply_and_carry_ids(tmp_path: Path) -> None:
    points = [Point(10.4, 10.0), Point(30.8, 30.0)]
    method, correction = fit(points)
    with CalibrationStore.open(tmp_path / "c.db") as store:
        saved = store.save(
            NewCalibration("climate", "temperature_c", method, correction, points, [10.4, 30.8], [10.0, 30.0])
        )
        active = ActiveCalibrations(store.current())
    data = active.reading_data("climate")({"temperature_c": 20.6, "pressure_pa": 100000.0})
    assert data["temperature_c"] == pytest.approx(20.0)
    assert data["pressure_pa"] == 100000.0 and data["cal"] == {"temperature_c": saved.id}
    assert active.reading_data("cabinet")({"temperature_c": 20.6}) == {"temperature_c": 20.6}  # no "cal" key


def test_watcher_picks_up_a_change_committed_by_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "c.db"

    async def scenario() -> list[int]:
        reader = CalibrationStore.open(path)
        active = ActiveCalibrations(reader.current())
        changes: list[int] = []

        async def changed(records: list) -> None:  # type: ignore[type-arg]
            changes.extend(r.id for r in records)

        watcher = asyncio.create_task(watch_calibrations(reader, active, changed, poll_s=0.05))
        with CalibrationStore.open(path) as writer:  # the CLI, in effect
            saved = await asyncio.to_thread(writer.save, new(19.5))
        for _ in range(400):
            if changes:
                break
            await asyncio.sleep(0.025)
        data = active.reading_data("climate")({"temperature_c": 20.0, "pressure_pa": 1e5})
        assert data == {"temperature_c": 19.5, "pressure_pa": 1e5, "cal": {"temperature_c": saved.id}}
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        reader.close()
        return changes

    assert len(asyncio.run(scenario())) == 1


def test_watcher_reports_a_change_saved_before_it_started(tmp_path: Path) -> None:
    # The daemon loads the corrections, then starts the watcher: a save in between must
    # be applied and reported (it used to become the watcher's baseline, silently).
    path = tmp_path / "c.db"

    async def scenario() -> tuple[list[int], int]:
        reader = CalibrationStore.open(path)
        active = ActiveCalibrations(reader.current())
        with CalibrationStore.open(path) as writer:
            saved = writer.save(new(19.5))
        changes: list[int] = []

        async def changed(records: list) -> None:  # type: ignore[type-arg]
            changes.extend(r.id for r in records)

        watcher = asyncio.create_task(watch_calibrations(reader, active, changed, poll_s=0.05))
        for _ in range(400):
            if changes:
                break
            await asyncio.sleep(0.025)
        assert active.reading_data("climate")({"temperature_c": 20.0})["cal"] == {"temperature_c": saved.id}
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        reader.close()
        return changes, saved.id

    changes, saved_id = asyncio.run(scenario())
    assert changes == [saved_id]


def test_watcher_reports_nothing_when_the_database_matches_what_is_in_effect(tmp_path: Path) -> None:
    """A reset made before the daemon started is not announced again as a change at start."""
    path = tmp_path / "c.db"
    with CalibrationStore.open(path) as setup:
        setup.save(new(19.5))
        setup.save(new(0.5, quantity="relative_humidity_pct"))
        setup.reset("climate", "temperature_c")

    async def scenario() -> tuple[list[int], dict[str, float]]:
        reader = CalibrationStore.open(path)
        active = ActiveCalibrations(reader.current())
        changes: list[int] = []

        async def changed(records: list) -> None:  # type: ignore[type-arg]
            changes.extend(r.id for r in records)

        watcher = asyncio.create_task(watch_calibrations(reader, active, changed, poll_s=0.01))
        await asyncio.sleep(0.2)  # many polls, the first of which always compares
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        corrected, _ = active.apply("climate", {"temperature_c": 20.0, "relative_humidity_pct": 40.0})
        reader.close()
        return changes, corrected

    changes, corrected = asyncio.run(scenario())
    assert changes == []
    assert corrected == {"temperature_c": 20.0, "relative_humidity_pct": 20.5}


def test_uncertainty_certificate_and_as_left_checks_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "calibration.db"
    with CalibrationStore.open(path, wall=lambda: 1_700_000_000.0) as store:
        saved = store.save(
            dataclasses.replace(
                new(19.5),
                uncertainty=0.12,
                reference_uncertainty=0.1,
                reference_certificate="DKD-K-12345 2026-03",
                spreads=[0.02],
                conditions="21 °C, 40 %RH",
            )
        )
        check = store.record_as_left(saved.id, reference=19.6, reading=20.08, reported=19.58, spread=0.01)
    with CalibrationStore.open(path) as store:
        (r,) = store.active("climate")
        assert store.as_left_checks(r.id) == [check]
        assert store.as_left_checks(r.id + 1) == []
    assert (r.uncertainty, r.reference_uncertainty, r.reference_certificate, r.spreads, r.conditions) == (
        0.12,
        0.1,
        "DKD-K-12345 2026-03",
        [0.02],
        "21 °C, 40 %RH",
    )
    assert r.as_json()["uncertainty"] == 0.12 and check.as_json()["reported"] == 19.58


def test_a_version_1_database_is_migrated_keeping_its_history(tmp_path: Path) -> None:
    path = tmp_path / "calibration.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(MIGRATIONS[0] + "; PRAGMA user_version = 1;")
    db.execute(
        "INSERT INTO calibrations (sensor, quantity, action, applies, method, gain, offset, created_at) "
        "VALUES ('climate', 'temperature_c', 'calibrate', 1, 'offset', 1.0, -0.5, 1.0)"
    )
    db.close()
    with CalibrationStore.open(path) as store:
        (r,) = store.active()
        assert r.offset == -0.5 and r.uncertainty is None and r.spreads == []
        store.record_as_left(r.id, reference=1.0, reading=1.5, reported=1.0, spread=None)
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3


def test_a_rollback_restores_the_uncertainty_and_certificate_details(tmp_path: Path) -> None:
    with CalibrationStore.open(tmp_path / "c.db") as store:
        first = store.save(
            dataclasses.replace(
                new(19.5), uncertainty=0.12, reference_certificate="C-1", spreads=[0.02], conditions="lab"
            )
        )
        store.save(new(19.0))
        (back,) = store.rollback("climate")
    assert back.restores == first.id
    assert (back.uncertainty, back.reference_certificate, back.spreads, back.conditions) == (
        0.12,
        "C-1",
        [0.02],
        "lab",
    )
