"""The calibration wizard driven in a pseudo-terminal (pexpect), as a technician would, including Ctrl-C."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

from tests.conftest import DEFAULT_CONFIG, REPO

EDGE_AGENT = str(Path(sys.executable).parent / "edge-agent")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    text = DEFAULT_CONFIG.read_text().replace('state_dir = "../state"', f'state_dir = "{tmp_path / "state"}"')
    path = tmp_path / "edge-agent.toml"
    path.write_text(text)
    return path


ANSI = r"(?:\x1b\[[0-9;?]*[A-Za-z])*"


class Terminal:
    """A pexpect child whose ``expect`` looks for text as seen on screen (rich colours numbers)."""

    def __init__(self, child: pexpect.spawn) -> None:
        self.child = child

    def expect(self, text: str) -> None:
        self.child.expect(ANSI.join(re.escape(ch) for ch in text))

    def sendline(self, line: str) -> None:
        self.child.sendline(line)

    def sendintr(self) -> None:
        self.child.sendintr()

    def finish(self) -> int:
        self.child.expect(pexpect.EOF)
        self.child.close()
        return int(self.child.exitstatus if self.child.exitstatus is not None else -1)


def spawn(config: Path, *args: str) -> Terminal:
    child = pexpect.spawn(
        EDGE_AGENT,
        ["calibrate", *args, "--config", str(config)],
        cwd=str(REPO),
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "120", "TERM": "xterm", "HOME": str(config.parent)},
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 120),
    )
    return Terminal(child)


def history(config: Path, sensor: str = "climate") -> list[dict[str, object]]:
    out = subprocess.run(
        [EDGE_AGENT, "calibration", "history", sensor, "--json", "--config", str(config)],
        capture_output=True,
        text=True,
        check=True,
    )
    return list(json.loads(out.stdout))


def test_two_point_wizard_end_to_end(config: Path) -> None:
    child = spawn(config, "climate", "--technician", "ana")
    child.expect("Quantity to calibrate")
    child.sendline("temperature_c")
    child.expect("Point 1")
    child.expect("Enter when steady")  # live readings are on screen
    child.sendline("")
    child.expect("Reference value at point 1")
    child.sendline("not-a-number")
    child.expect("enter a number")  # rich re-asks
    child.sendline("20.0")
    child.expect("second point")
    child.sendline("y")
    child.expect("Point 2")
    child.expect("Enter when steady")
    child.sendline("")
    child.expect("Reference value at point 2")
    child.sendline("20.0")
    child.expect("must differ from point 1")
    child.sendline("25.0")
    child.expect("Reference instrument")
    child.sendline("Fluke 1524 s/n 42")
    child.expect("Note")
    child.sendline("demo")
    # Both points read the same (simulated) air: no sane gain, nothing is saved.
    child.expect("Cannot calibrate")
    assert child.finish() == 1
    assert history(config) == []


def test_one_point_wizard_saves_and_shows_corrected_readings(config: Path) -> None:
    child = spawn(config, "climate", "--quantity", "temperature_c", "--technician", "ana")
    child.expect("Enter when steady")
    child.sendline("")
    child.expect("Reference value at point 1")
    child.sendline("18.5")
    child.expect("second point")
    child.sendline("n")
    child.expect("Reference instrument")
    child.sendline("Fluke 1524 s/n 42")
    child.expect("Note")
    child.sendline("")
    child.expect("offset correction")
    child.expect("as found")
    child.expect("Save this calibration")
    child.sendline("y")
    child.expect("Saved calibration #1")
    child.expect("corrected")
    assert child.finish() == 0
    (record,) = history(config)
    assert record["method"] == "offset" and record["gain"] == 1.0
    assert record["technician"] == "ana" and record["reference_instrument"] == "Fluke 1524 s/n 42"
    (point,) = record["points"]  # type: ignore[misc]
    assert point["reference"] == 18.5
    assert record["as_left"] == [pytest.approx(18.5)]


@pytest.mark.parametrize("where", ["live", "reference", "confirm"])
def test_ctrl_c_at_any_point_changes_nothing(config: Path, where: str) -> None:
    child = spawn(config, "climate", "--quantity", "temperature_c")
    child.expect("Enter when steady")
    if where != "live":
        child.sendline("")
        child.expect("Reference value at point 1")
        if where == "confirm":
            child.sendline("18.5")
            child.expect("second point")
            child.sendline("n")
            child.expect("Reference instrument")
            child.sendline("")
            child.expect("Note")
            child.sendline("")
            child.expect("Save this calibration")
    child.sendintr()
    child.expect("Cancelled: nothing was saved")
    assert child.finish() == 130
    assert history(config) == []


def test_declining_saves_nothing(config: Path) -> None:
    child = spawn(config, "climate", "--quantity", "temperature_c")
    child.expect("Enter when steady")
    child.sendline("")
    child.expect("Reference value at point 1")
    child.sendline("18.5")
    child.expect("second point")
    child.sendline("n")
    child.expect("Reference instrument")
    child.sendline("")
    child.expect("Note")
    child.sendline("")
    child.expect("Save this calibration")
    child.sendline("n")
    child.expect("Not saved")
    assert child.finish() == 1
    assert history(config) == []
