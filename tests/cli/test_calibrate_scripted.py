"""Scripted ``calibrate --point``/``--reference``: any number of points, the defaults the config
implies, uncertainty, clean numbers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from edge_agent.calibration import CALIBRATION_FILE, CalibrationStore
from edge_agent.cli.app import app
from tests.cli.configs import config_in
from tests.cli.narrow import run
from tests.test_cli import cli


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return config_in(tmp_path)


def history(config: Path) -> list[dict[str, object]]:
    return list(
        json.loads(cli("calibration", "history", "climate", "--json", "--config", str(config)).stdout)
    )


def test_defaults_follow_the_config_and_values_carry_no_float_noise(config: Path) -> None:
    c = ["--config", str(config)]
    first = cli(
        "calibrate", "climate", "-q", "temperature_c", "--reference", "20", "--reading", "20.3", "-y", *c
    )
    assert first.returncode == 0, first.stderr
    # A reading given on the command line has no known spread: U is the reference's (k = 2).
    second = cli(
        "calibrate", "climate", "-q", "temperature_c", "--reference", "20", "--reading", "20.3", "--reference2", "32.6", "--reading2", "32.82",
        "--reference-uncertainty", "0.1", "--reference-certificate", "C-7", "--conditions", "lab", "-y", *c,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    one, two = history(config)
    # The config's climate-calibration-due test requires 180 days (not the old 365).
    assert one["expires_at"] == pytest.approx(one["calibrated_at"] + 180 * 86400)  # type: ignore[operator]
    # As found with the first correction: 32.82 − 0.3 = 32.52, not 32.519999999999996;
    # as left 32.6, not 32.599999999999994.
    assert two["as_found"] == [20.0, 32.52] and two["as_left"] == [20.0, 32.6]
    assert two["uncertainty"] == 0.1 and two["reference_certificate"] == "C-7" and two["conditions"] == "lab"
    assert one["uncertainty"] is None  # no reference uncertainty given: not determined
    assert (
        "expanded uncertainty ±0.1 °C (k = 2)" in second.stdout and "e-15" not in second.stdout
    )  # the error after was "-7.11e-15"


def test_piped_confirmation_shows_its_choices_and_no_saves_nothing(config: Path) -> None:
    asked = subprocess.run(
        [sys.executable, "-m", "edge_agent", "calibrate", "climate", "-q", "temperature_c", "--reference", "20",
         "--reading", "20.3", "--config", str(config)],
        input="n\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert asked.returncode == 1
    assert "Save this calibration? [y/N]" in asked.stdout  # the markup ate "[y/N]"
    assert history(config) == []


def test_scripted_as_left_is_measured_after_saving(config: Path) -> None:
    done = cli(
        "calibrate", "climate", "-q", "temperature_c", "--reference", "20", "--reading", "20.3",
        "--as-left", "20", "--samples", "3", "-y", "--config", str(config),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "As left: reference 20 °C, the device reports" in " ".join(done.stdout.split())
    with CalibrationStore.open(config.parent / "state" / CALIBRATION_FILE) as store:
        (check,) = store.as_left_checks(1)
    # The room simulator is near 21 °C, not at the 20.3 given: a measurement, not the fit.
    assert check.reference == 20.0 and check.reported == pytest.approx(check.reading - 0.3)
    assert check.reported != 20.0 and check.spread is not None
    refused = cli("calibrate", "climate", "--as-left", "20", "--config", str(config))
    assert refused.returncode == 2 and "--as-left is for scripts" in refused.stderr


def _least_squares(points: list[tuple[float, float]]) -> tuple[float, float]:
    """(gain, offset) of reference = gain · raw + offset, worked out here on its own."""
    n = len(points)
    mx = sum(raw for _, raw in points) / n
    my = sum(ref for ref, _ in points) / n
    sxy = sum((raw - mx) * (ref - my) for ref, raw in points)
    sxx = sum((raw - mx) ** 2 for _, raw in points)
    return sxy / sxx, my - sxy / sxx * mx


def test_scripted_takes_any_number_of_points_fitted_by_least_squares_with_residuals(config: Path) -> None:
    given = [(10.0, 10.4), (20.0, 20.5), (30.0, 30.7), (40.0, 40.75)]
    points = [a for ref, raw in given for a in ("--point", f"{ref:g}={raw:g}")]
    done = cli("calibrate", "climate", "-q", "temperature_c", *points, "-y", "--config", str(config))
    assert done.returncode == 0, done.stderr
    (record,) = history(config)
    assert record["method"] == "linear"
    assert [(p["reference"], p["reading"]) for p in record["points"]] == given  # type: ignore[attr-defined]
    gain, offset = _least_squares(given)
    assert record["gain"] == pytest.approx(gain, rel=1e-9) and record["offset"] == pytest.approx(
        offset, abs=1e-9
    )
    assert "least squares through 4 points" in done.stdout and "residual" in done.stdout
    # Each point's residual on its row: corrected reading − reference, as the wizard shows it.
    rows = [line for line in done.stdout.splitlines() if re.match(r"\W*[1-4] \W", line)]
    assert len(rows) == 4
    for (ref, raw), row in zip(given, rows, strict=True):
        residual = float(row.split()[-2] if row.rstrip().endswith("│") else row.split()[-1])
        assert residual == pytest.approx(gain * raw + offset - ref, abs=1e-3)


def test_scripted_refuses_a_point_out_of_line_and_saves_nothing(config: Path) -> None:
    points = ["--point", "10=10.4", "--point", "20=20.5", "--point", "30=33.7", "--point", "40=40.75"]
    refused = cli("calibrate", "climate", "-q", "temperature_c", *points, "-y", "--config", str(config))
    assert refused.returncode == 1
    assert "point 3 is out of line with the others" in refused.stderr
    assert history(config) == []


@pytest.mark.parametrize(
    ("point", "says"),
    [
        ("abc", "the reference 'abc' is not a number"),
        ("", "the reference '' is not a number"),
        ("20=", "the reading '' is not a number"),
        ("=20", "the reference '' is not a number"),
        ("20=20.3=1", "the reading '20.3=1' is not a number"),
        ("nan", "the reference must be a finite number"),
        ("20=inf", "the reading must be a finite number"),
        ("20,5", "the reference '20,5' is not a number"),
    ],
)
def test_a_bad_point_is_a_usage_mistake(config: Path, point: str, says: str) -> None:
    bad = run("calibrate", "climate", "-q", "temperature_c", "--point", point, "-y", "--config", str(config))
    assert bad.exit_code == 2 and says in bad.stderr, bad.output
    assert "Traceback" not in bad.output


def test_point_and_the_one_or_two_point_flags_do_not_mix(config: Path) -> None:
    mixed = run("calibrate", "climate", "-q", "temperature_c", "--point", "20", "--reference", "20", "-y",
                "--config", str(config))  # fmt: skip
    assert mixed.exit_code == 2 and "--point replaces --reference" in mixed.stderr


def test_measured_points_are_asked_for_in_order_and_a_missing_enter_saves_nothing(config: Path) -> None:
    """Points without readings are measured one by one, the caller confirming each move on
    stdin; one Enter for three points: point 2 is measured, point 3 never is."""
    result = CliRunner().invoke(
        app,
        ["calibrate", "climate", "-q", "temperature_c", "--point", "20", "--point", "30", "--point", "40",
         "--samples", "2", "-y", "--config", str(config)],
        input="\n",
        env={"COLUMNS": "200", "EDGE_CONFIG": None},
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    asked = re.findall(r"Bring the sensor to reference point (\d) \((\d+)\)", result.stdout)
    assert asked == [("2", "30"), ("3", "40")]
    assert "no Enter on stdin for point 3" in result.stderr
    assert history(config) == []


def test_hostile_points_save_nothing_absurd_and_never_a_traceback(config: Path) -> None:
    def calibrate(*points: str) -> Result:
        flags = [a for p in points for a in ("--point", p)]
        return run("calibrate", "climate", "-q", "temperature_c", *flags, "-y", "--config", str(config))

    # An offset of 1e308 − (−1e308) = inf was saved (history printed "offset": Infinity, not
    # JSON); three such points were an OverflowError traceback.
    for points in (("1e308=-1e308",), ("1e308=1e308", "-1e308=-1e308", "0=0")):
        refused = calibrate(*points)
        assert refused.exit_code == 1 and "too large to fit" in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
    with CalibrationStore.open(config.parent / "state" / CALIBRATION_FILE) as store:
        assert store.history("climate") == []
    # The same reference measured twice, then another: a good calibration, not "point 3 out of line".
    repeated = calibrate("20=20.3", "20=20.35", "30=30.4")
    assert repeated.exit_code == 0, repeated.output
    with CalibrationStore.open(config.parent / "state" / CALIBRATION_FILE) as store:
        (record,) = store.history("climate")
    assert record.gain == pytest.approx(0.995, abs=0.01)
