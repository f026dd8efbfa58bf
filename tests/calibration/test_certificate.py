"""The calibration certificate: rendered by the CLI, read back from the PDF, every field found."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pypdf
import pytest

from edge_agent.calibration import CALIBRATION_FILE, CalibrationStore, NewCalibration, Point
from edge_agent.calibration.fit import fit_points
from tests.cli.configs import config_in
from tests.conftest import REPO

EDGE_AGENT = [sys.executable, "-m", "edge_agent"]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return config_in(tmp_path)


def calibrate_two_points(state: Path) -> int:
    points = [Point(10.4, 10.0), Point(30.8, 30.0)]
    result = fit_points(points)
    with CalibrationStore.open(state / CALIBRATION_FILE, wall=lambda: 1_780_000_000.0) as store:
        saved = store.save(
            NewCalibration(
                sensor="climate",
                quantity="temperature_c",
                method=result.method,
                correction=result.correction,
                points=points,
                as_found=[10.4, 30.8],
                as_left=[10.0, 30.0],
                reference_instrument="Fluke 1524 s/n 42",
                technician="ana",
                note="after fan replacement",
                expires_at=1_780_000_000.0 + 180 * 86400,
                uncertainty=0.12,
                reference_uncertainty=0.1,
                reference_certificate="DKD-K-06401 2026-03",
                spreads=[0.02, 0.03],
                conditions="22 °C, 45 %RH, climate chamber",
            )
        )
        store.record_as_left(saved.id, reference=30.0, reading=30.81, reported=30.01, spread=0.02)
    return saved.id


def run(config: Path, *args: str, env_python: list[str] = EDGE_AGENT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*env_python, "calibration", "certificate", "climate", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


def test_the_certificate_carries_every_field(config: Path, tmp_path: Path) -> None:
    cal_id = calibrate_two_points(tmp_path / "state")
    out = tmp_path / "cert.pdf"
    done = run(config, "--out", str(out))
    assert done.returncode == 0, done.stderr
    reader = pypdf.PdfReader(out)
    assert len(reader.pages) == 1
    text = " ".join(reader.pages[0].extract_text().split())
    for expected in (
        "Calibration certificate",
        f"Calibration id #{cal_id}",
        "sim-pi-0001",  # device identity
        "climate (bme280, I2C bus sim, address 0x76)",  # sensor identity
        "temperature_c [°C]",
        "Fluke 1524 s/n 42",  # reference instrument
        "DKD-K-06401 2026-03",  # and its certificate
        "± 0.1 °C (k = 2)",  # its uncertainty
        "22 °C, 45 %RH, climate chamber",  # conditions
        "gain and offset through 2 points",  # the fit
        "corrected = 0.98039216 x raw - 0.19607843 °C",
        "± 0.12 °C (k = 2",  # uncertainty
        "Technician ana",
        "Calibrated 2026-05-28 20:26 UTC",  # date
        "Valid until 2026-11-24 20:26 UTC",  # validity
        "after fan replacement",
        # per point: reference, raw, as found, error, as left, error, spread
        "1 10 10.4 10.4 +0.4 10 +0 0.02",
        "2 30 30.8 30.8 +0.8 30 +0 0.03",
        "As left, measured after saving",
        "30 30.01 +0.01",  # the measured as-left
    ):
        assert expected in text, f"{expected!r} not in {text!r}"


def test_no_calibration_or_no_pdf_library_is_one_line(config: Path, tmp_path: Path) -> None:
    out = tmp_path / "cert.pdf"
    nothing = run(config, "--out", str(out))
    assert nothing.returncode == 1 and not out.exists()
    assert nothing.stderr.strip().count("\n") == 0 and "no calibration in effect" in nothing.stderr
    calibrate_two_points(tmp_path / "state")
    without_fpdf = [
        sys.executable,
        "-c",
        "import sys; sys.modules['fpdf'] = None; from edge_agent.cli.app import main; main()",
    ]
    missing = run(config, "--out", str(out), env_python=without_fpdf)
    assert missing.returncode == 1 and not out.exists(), missing.stderr
    assert missing.stderr.strip() == (
        "the PDF certificate needs fpdf2: pip install 'edge-agent[certificate]' (it adds fpdf2)"
    )
