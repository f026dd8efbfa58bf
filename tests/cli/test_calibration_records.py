"""``calibration reset|rollback|show|history`` at 80 columns: undo whole, who did it, units, expiry."""

from __future__ import annotations

import getpass
import json
import time
from pathlib import Path

import pytest

from edge_agent.calibration import CALIBRATION_FILE, CalibrationStore, NewCalibration, Point, fit
from edge_agent.settings import load_settings
from tests.cli.narrow import config_in, fits, run


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return config_in(tmp_path)


def calibrate(config: Path, quantity: str, reference: str, *extra: str) -> None:
    result = run(
        "calibrate", "climate", "--quantity", quantity, "--reference", reference, "--yes",
        "--technician", "ana", *extra, "--config", str(config),
    )  # fmt: skip
    assert result.exit_code == 0, result.output


def history(config: Path) -> list[dict[str, object]]:
    result = run("calibration", "history", "climate", "--json", "--config", str(config))
    assert result.exit_code == 0, result.output
    return list(json.loads(result.stdout))


def test_reset_and_rollback_record_who_and_undo_the_reset_whole(config: Path) -> None:
    calibrate(config, "temperature_c", "21.5")
    calibrate(config, "relative_humidity_pct", "60")
    assert run("calibration", "reset", "climate", "--config", str(config)).exit_code == 0
    result = run("calibration", "rollback", "climate", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "temperature_c" in result.stdout and "relative_humidity_pct" in result.stdout
    rows = history(config)
    assert [r["action"] for r in rows] == ["calibrate", "calibrate", "reset", "reset", "rollback", "rollback"]
    assert all(r["technician"] == getpass.getuser() for r in rows[2:])  # not blank
    shown = run("calibration", "show", "climate", "--json", "--config", str(config))
    assert sorted(r["quantity"] for r in json.loads(shown.stdout)) == [
        "relative_humidity_pct",
        "temperature_c",
    ]


def test_the_tour_first_run_is_green_and_calibration_due_passes_after_calibrate(config: Path) -> None:
    assert "climate-calibration-due" not in [t.name for t in load_settings(config).tests if t.enabled]
    due = ("test", "run", "climate-calibration-due", "--config", str(config))
    before = run(*due)
    assert before.exit_code == 1 and "never been calibrated" in before.stdout
    calibrate(config, "temperature_c", "21.4")
    after = run(*due)
    assert after.exit_code == 0, after.stdout


def test_show_and_history_fit_80_columns_with_units_reference_points_and_expiry(config: Path) -> None:
    settings = load_settings(config)
    with CalibrationStore.open(settings.storage.state_dir / CALIBRATION_FILE) as store:
        points = [Point(20.0, 21.0), Point(30.0, 30.5)]
        method, correction = fit(points)
        store.save(
            NewCalibration(
                sensor="climate", quantity="temperature_c", method=method, correction=correction,
                points=points, as_found=[20.0, 30.0], as_left=[21.0, 30.5],
                reference_instrument="Fluke 1524 s/n 42", technician="ana",
                note="a long note that a technician wrote about the fan that was replaced today",
                expires_at=time.time() - 86400,
            )
        )  # fmt: skip
    for args in (("show",), ("history", "climate")):
        result = run("calibration", *args, "--config", str(config))
        assert result.exit_code == 0, result.output
        out = result.stdout
        assert fits(out) and "…" not in out and out.endswith("\n"), out
        assert "temperature_c [°C]" in out and "Fluke 1524 s/n 42" in out and "expired" in out
        assert "20 → 21 °C" in out and "30 → 30.5 °C" in out and "fan that was" in out


def test_drivers_and_test_run_fit_80_columns(config: Path) -> None:
    drivers = run("drivers")
    assert drivers.exit_code == 0 and fits(drivers.stdout) and "…" not in drivers.stdout
    assert "relative_humidity_pct [%RH]" in drivers.stdout
    tests = run("test", "run", "climate-range", "climate-self-test", "--config", str(config))
    assert tests.exit_code == 0 and fits(tests.stdout) and "…" not in tests.stdout, tests.stdout
    assert "calibration consistent, values in range" in " ".join(tests.stdout.split())


def test_buffer_export_into_a_missing_folder_names_the_folder(config: Path, tmp_path: Path) -> None:
    out = tmp_path / "stick" / "events.jsonl"
    result = run("buffer", "export", "--out", str(out), "--config", str(config))
    assert result.exit_code == 1
    assert f"the folder {out.parent} does not exist" in " ".join(result.stderr.split())
    assert ".part" not in result.stderr and "Errno" not in result.stderr
