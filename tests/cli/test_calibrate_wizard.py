"""The calibration wizard driven in a pseudo-terminal (pexpect), as a technician would, including Ctrl-C."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

from edge_agent.calibration import CALIBRATION_FILE, CalibrationStore
from edge_agent.calibration.store import AsLeftCheck
from tests.cli.bath import SPAN, ZERO
from tests.cli.configs import config_in
from tests.conftest import REPO

EDGE_AGENT = str(Path(sys.executable).parent / "edge-agent")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return config_in(tmp_path)


ANSI = r"(?:\x1b\[[0-9;?]*[A-Za-z])*"


class Terminal:
    """A pexpect child whose ``expect`` looks for text as seen on screen (rich colours numbers)."""

    def __init__(self, child: pexpect.spawn) -> None:
        self.child = child

    def expect(self, text: str) -> None:
        # A space may be where the 80-column terminal wrapped the line.
        self.child.expect(ANSI.join(r"\s+" if ch == " " else re.escape(ch) for ch in text))

    def sendline(self, line: str) -> None:
        self.child.sendline(line)

    def sendintr(self) -> None:
        self.child.sendintr()

    def finish(self) -> int:
        self.child.expect(pexpect.EOF)
        self.child.close()
        return int(self.child.exitstatus if self.child.exitstatus is not None else -1)


def spawn(config: Path, *args: str, bath: Path | None = None) -> Terminal:
    # 80 columns, as a technician's laptop terminal; USER is who the wizard proposes.
    env = {
        "PATH": "/usr/bin:/bin",
        "TERM": "xterm",
        "HOME": str(config.parent),
        "USER": "ana",
        "LOGNAME": "ana",
    }
    command = [EDGE_AGENT]
    if bath is not None:  # the simulated chip in a bath the test sets (tests/cli/bath.py)
        command = [sys.executable, "-m", "tests.cli.bath"]
        env["SIM_BATH_FILE"] = str(bath)
    child = pexpect.spawn(
        command[0],
        [*command[1:], "calibrate", *args, "--samples", "3", "--config", str(config)],
        cwd=str(REPO),
        env=env,
        encoding="utf-8",
        timeout=30,
        dimensions=(40, 80),
    )
    child.delaybeforesend = None  # no 50 ms pause before each answer: the wizard reads input when it is ready
    return Terminal(child)


def history(config: Path, sensor: str = "climate") -> list[dict[str, object]]:
    out = subprocess.run(
        [EDGE_AGENT, "calibration", "history", sensor, "--json", "--config", str(config)],
        capture_output=True,
        text=True,
        check=True,
    )
    return list(json.loads(out.stdout))


def as_left_checks(config: Path, calibration: int) -> list[AsLeftCheck]:
    with CalibrationStore.open(config.parent / "state" / CALIBRATION_FILE) as store:
        return store.as_left_checks(calibration)


def saved_ids(config: Path) -> list[int]:
    """The history's ids, read directly (a CLI process per check would cost 0.5 s each)."""
    with CalibrationStore.open(config.parent / "state" / CALIBRATION_FILE) as store:
        return [r.id for r in store.history("climate")]


# The wizard's steps in order: (what it shows, what the technician answers).
STEPS: list[tuple[str, str | None]] = [
    ("Quantity to calibrate (temperature_c)", ""),  # the calibration_due test's quantity by default
    ("Who is calibrating (ana)", ""),  # the login user by default
    ("Valid for (climate-calibration-due requires 180d) (180d)", ""),
    ("Reference instrument (model, serial)", "Fluke 1524 s/n 42"),
    ("Its calibration certificate number", "DKD-K-06401 2026-03"),
    ("Its stated uncertainty, ± °C at k = 2", "0.1"),
    ("Conditions", "22 °C, 45 %RH"),
    ("filling the window) — Enter when steady", ""),  # the live readings of point 1
    ("Reference value at point 1 (°C)", "18.5"),
    ("Add a second point", "n"),
    ("Note (optional)", ""),
    ("Save this calibration?", "y"),
    ("As-left check", None),  # live again, with the new correction:
    ("filling the window) — Enter when steady", ""),
    ("Reference value now (°C) (18.5)", ""),
]


def test_wizard_in_a_bath_at_80_columns_two_points_then_a_third(config: Path, tmp_path: Path) -> None:
    bath = tmp_path / "bath"
    bath.write_text("5.0")
    child = spawn(config, "climate", bath=bath)
    child.expect("Calibrating climate (bme280)")
    child.expect("Quantities: temperature_c (°C), pressure_pa (Pa), relative_humidity_pct (%RH)")
    for shown, answer in STEPS[:8]:  # defaults taken by Enter, up to the live readings of point 1
        child.expect(shown)
        child.sendline(answer or "")
    child.expect("taking it")
    child.expect("Reference value at point 1 (°C)")
    child.sendline("5.0")
    child.expect("Point 1: reading")
    child.expect("Add a second point")
    child.sendline("y")
    # Point 2 says how different the condition must be: √2 · σ / 1 % with σ 0.1 from climate-noise.
    child.expect("at least 14 °C away from point 1")
    child.expect("press Enter to take this point")  # still in the 5 °C bath: steady
    # No echo while the readings are redrawn in place (an echoed Enter drew the header twice).
    assert not child.child.getecho()
    bath.write_text("35.0")  # the technician moves the sensor to the warm bath
    child.expect("settling (spread")  # the window still holds 5 °C readings
    child.sendline("")
    # Enter while settling is remembered; the point is taken only once the window is steady.
    child.expect("Enter pressed: taken once steady")
    child.expect("taking it")
    child.expect("Reference value at point 2 (°C)")
    assert child.child.getecho()  # and back for the prompts
    child.sendline("5.0")
    child.expect("must differ from point 1")
    child.sendline("35.0")
    child.expect("Add point 3")
    child.sendline("y")  # a third point, between the two: least squares
    child.expect("Point 3: move the sensor and the reference to another condition, between or beyond")
    child.expect("press Enter to take this point")  # still steady in the 35 °C bath
    bath.write_text("20.0")
    child.expect("settling (spread")
    child.sendline("")
    child.expect("taking it")
    child.expect("Reference value at point 3 (°C)")
    child.sendline("20.0")
    child.expect("Add point 4")
    child.sendline("n")
    child.expect("Note (optional)")
    child.sendline("")
    # The fit with units and uncertainty, each point's residual; no float noise, no "-4.44e-16".
    child.expect("gain and offset, least squares through 3 points")
    child.expect("expanded uncertainty ±")
    child.expect("reference °C")
    child.expect("Save this calibration?")
    child.sendline("y")
    child.expect("Saved calibration #1")
    child.expect("As-left check")
    child.expect("press Enter to take this point")
    child.sendline("")
    child.expect("Reference value now (°C) (20.0)")
    child.sendline("")
    child.expect("As left: reference 20 °C, the device reports")
    child.expect("(kept with #1).")
    assert child.finish() == 0
    (record,) = history(config)
    # The chip reads 1.02 · T + 0.3: the fit finds the inverse (within its noise).
    assert record["method"] == "linear" and len(record["points"]) == 3  # type: ignore[arg-type]
    assert record["gain"] == pytest.approx(1 / SPAN, abs=0.002)
    assert record["offset"] == pytest.approx(-ZERO / SPAN, abs=0.05)
    assert record["technician"] == "ana" and record["reference_instrument"] == "Fluke 1524 s/n 42"
    assert (
        record["reference_certificate"] == "DKD-K-06401 2026-03" and record["conditions"] == "22 °C, 45 %RH"
    )
    assert record["expires_at"] == pytest.approx(record["calibrated_at"] + 180 * 86400)  # type: ignore[operator]
    assert record["reference_uncertainty"] == 0.1 and 0.1 <= record["uncertainty"] < 0.2  # type: ignore[operator]
    assert [p["reference"] for p in record["points"]] == [5.0, 35.0, 20.0]  # type: ignore[attr-defined]
    assert all(len(repr(v)) <= 12 for v in record["as_found"])  # type: ignore[attr-defined]  # no float noise
    (check,) = as_left_checks(config, 1)
    # Measured after saving: a fresh reading with the saved correction (it may happen to equal
    # the fit's value: the chip resolves 0.01 °C).
    assert check.reference == 20.0 and check.measured_at >= record["calibrated_at"]  # type: ignore[operator]
    assert check.reported == pytest.approx(record["gain"] * check.reading + record["offset"])  # type: ignore[operator]
    assert check.reported == pytest.approx(20.0, abs=0.1) and check.spread is not None


def test_two_points_in_the_same_air_are_refused(config: Path) -> None:
    child = spawn(
        config, "climate", "-q", "temperature_c", "--technician", "ana", "--valid-for", "90d",
        "--instrument", "Fluke", "--reference-certificate", "C-1", "--reference-uncertainty", "0.1",
        "--conditions", "lab",
    )  # fmt: skip
    child.expect("Enter when steady")  # the live readings are up: Enter is not dropped
    child.sendline("")
    child.expect("Reference value at point 1")
    child.sendline("not-a-number")
    child.expect("enter a number")  # rich re-asks
    child.sendline("20.0")
    child.expect("Add a second point")
    child.sendline("y")
    # Point 2 says how different the condition must be (from the noise seen at point 1).
    child.expect("Point 2: move the sensor and the reference to a different condition at least")
    child.expect("Enter when steady")  # the live readings are up: Enter is not dropped
    child.sendline("")
    child.expect("Reference value at point 2 (°C)")
    child.sendline("20.0")
    child.expect("must differ from point 1")
    child.sendline("25.0")
    child.expect("Add point 3")
    child.sendline("n")
    child.expect("Note")
    child.sendline("")
    # Both points read the same (simulated) air: no sane gain, nothing is saved.
    child.expect("Cannot calibrate")
    child.expect("Not saved")
    assert child.finish() == 1
    assert history(config) == []


def test_ctrl_c_at_each_step_writes_nothing(tmp_path: Path) -> None:
    # One wizard per step, driven side by side (each waits on its sensor most of the time),
    # each interrupted at its own step.
    configs = [config_in(tmp_path / f"step{i}") for i in range(len(STEPS))]
    children = [spawn(c, "climate") for c in configs]
    for k, (shown, answer) in enumerate(STEPS):
        for i in range(k, len(children)):
            children[i].expect(shown)
            if i == k:
                children[i].sendintr()
            elif answer is not None:
                children[i].sendline(answer)
        if shown.endswith("Enter when steady"):
            for child in children[k + 1 :]:
                child.expect("taking it")
    saving = STEPS.index(("Save this calibration?", "y"))
    for k, ((shown, _), child, config) in enumerate(zip(STEPS, children, configs, strict=True)):
        if k > saving:
            # Confirmed and saved before: it stays; the as-left check is not recorded.
            child.expect("Cancelled: calibration #1 stays saved; no as-left check was recorded")
            assert child.finish() == 130
            assert saved_ids(config) == [1] and as_left_checks(config, 1) == [], shown
        else:
            child.expect("Cancelled: nothing was saved")
            assert child.finish() == 130
            assert saved_ids(config) == [], shown


# The steps of a second point, after point 1 was taken, and how point 3 is declined.
POINT_2_STEPS: list[tuple[str, str]] = [
    ("Enter when steady", ""),  # the live readings of point 2
    ("Reference value at point 2 (°C)", "35.0"),
    ("Add point 3", "n"),
]
# Everything the prompts before point 1 would ask, given as flags.
SCRIPTED = (
    "-q", "temperature_c", "--technician", "ana", "--valid-for", "90d", "--instrument", "Fluke",
    "--reference-certificate", "C-1", "--reference-uncertainty", "0.1", "--conditions", "lab",
)  # fmt: skip


def test_ctrl_c_at_each_step_of_a_second_point_writes_nothing(tmp_path: Path) -> None:
    configs = [config_in(tmp_path / f"step{i}") for i in range(len(POINT_2_STEPS))]
    children = [spawn(c, "climate", *SCRIPTED) for c in configs]
    for child in children:  # point 1, taken in full by each
        child.expect("Enter when steady")
        child.sendline("")
        child.expect("Reference value at point 1 (°C)")
        child.sendline("20.0")
        child.expect("Add a second point")
        child.sendline("y")
        child.expect("Point 2: move the sensor")
    for k, (shown, answer) in enumerate(POINT_2_STEPS):
        for i in range(k, len(children)):
            children[i].expect(shown)
            if i == k:
                children[i].sendintr()
            else:
                children[i].sendline(answer)
    for (shown, _), child, config in zip(POINT_2_STEPS, children, configs, strict=True):
        child.expect("Cancelled: nothing was saved")
        assert child.finish() == 130, shown
        assert saved_ids(config) == [], shown
