"""``test run``, scripted ``calibrate`` and ``calibration …`` as a user runs them: exit codes, messages, state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import DEFAULT_CONFIG
from tests.test_cli import cli

TESTS = """
[[tests]]
name = "ok-range"
sensor = "climate"
kind = "range"
limits = { temperature_c = [-10, 50] }

[[tests]]
name = "impossible-range"
sensor = "climate"
kind = "range"
limits = { temperature_c = [100, 200] }

[[sensors]]
name = "ghost"                # on an I2C bus this machine does not have: cannot be opened
driver = "bme280"
bus = 99
address = 0x77

[[tests]]
name = "ghost-range"
sensor = "ghost"
kind = "range"
limits = { temperature_c = [-10, 50] }

[[tests]]
name = "disabled-one"
sensor = "climate"
kind = "range"
enabled = false
limits = { temperature_c = [-10, 50] }
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    text = DEFAULT_CONFIG.read_text().replace('state_dir = "../state"', f'state_dir = "{tmp_path / "state"}"')
    text = text[: text.index("[[tests]]")] + TESTS
    path = tmp_path / "edge-agent.toml"
    path.write_text(text)
    return path


def test_test_run_exit_status_follows_the_worst_result(config: Path) -> None:
    ok = cli("test", "run", "ok-range", "--config", str(config))
    assert ok.returncode == 0, ok.stderr
    assert "ok-range" in ok.stdout and "pass" in ok.stdout
    failed = cli("test", "run", "ok-range", "impossible-range", "--json", "--config", str(config))
    assert failed.returncode == 1
    results = json.loads(failed.stdout)
    assert [(r["test"], r["status"]) for r in results] == [("ok-range", "pass"), ("impossible-range", "fail")]
    assert results[1]["limits"] == {"temperature_c": [100, 200]} and "outside" in results[1]["detail"]
    errored = cli("test", "run", "impossible-range", "ghost-range", "--json", "--config", str(config))
    assert errored.returncode == 69
    assert [r["status"] for r in json.loads(errored.stdout)] == ["fail", "error"]


def test_test_run_all_skips_disabled_tests(config: Path) -> None:
    result = cli("test", "run", "--all", "--json", "--config", str(config))
    assert {r["test"] for r in json.loads(result.stdout)} == {"ok-range", "impossible-range", "ghost-range"}


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["nope"], "unknown test 'nope'"),
        ([], "name the tests to run, or --all"),
        (["ok-range", "--all"], "not both"),
    ],
)
def test_test_run_bad_usage(config: Path, args: list[str], words: str) -> None:
    result = cli("test", "run", *args, "--config", str(config))
    assert result.returncode == 2
    assert words in result.stderr


def test_scripted_calibration_then_show_history_rollback(config: Path) -> None:
    c = ["--config", str(config)]
    saved = cli(
        "calibrate",
        "climate",
        "--quantity",
        "temperature_c",
        "--reference",
        "19.0",
        "--yes",
        "--instrument",
        "ref-1",
        *c,
    )
    assert saved.returncode == 0, saved.stderr
    assert "Saved calibration #1" in saved.stdout
    two = cli(
        "calibrate", "climate", "-q", "temperature_c", "--reference", "10", "--reference2", "30",
        "--reading", "10.4", "--reading2", "30.8", "--yes", *c,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr
    (active,) = json.loads(cli("calibration", "show", "climate", "--json", *c).stdout)
    assert active["id"] == 2 and active["method"] == "linear"
    assert active["gain"] == pytest.approx(20 / 20.4) and active["points"][1] == {
        "reading": 30.8,
        "reference": 30.0,
    }
    assert active["as_left"] == [pytest.approx(10.0), pytest.approx(30.0)]
    back = cli("calibration", "rollback", "climate", *c)
    assert back.returncode == 0 and "calibration #1 applies again" in back.stdout
    reset = cli("calibration", "reset", "climate", "--quantity", "temperature_c", *c)
    assert reset.returncode == 0
    assert json.loads(cli("calibration", "show", "--json", *c).stdout) == []
    history = json.loads(cli("calibration", "history", "climate", "--json", *c).stdout)
    assert [h["action"] for h in history] == ["calibrate", "calibrate", "rollback", "reset"]


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["nope", "-q", "temperature_c", "--reference", "1"], 2, "unknown sensor 'nope'"),
        (["climate", "-q", "temperature_c", "--reference", "abc"], 2, "--reference"),
        (["climate", "-q", "temperature_c", "--reference", "20", "--reference2", "20"], 2, "identical"),
        (
            [
                "climate",
                "-q",
                "temperature_c",
                "--reference",
                "10",
                "--reference2",
                "30",
                "--reading",
                "10",
                "--reading2",
                "11",
                "--yes",
            ],
            1,
            "outside the sane range",
        ),
        (["climate", "-q", "nonsense_c", "--reference", "1", "--yes"], 2, "does not report 'nonsense_c'"),
        (["climate", "--reference", "1", "--yes"], 2, "--quantity is required"),
        (["climate", "-q", "temperature_c", "--reference", "nan", "--yes"], 1, "finite"),
        (
            ["climate", "-q", "temperature_c", "--reading2", "3", "--reference", "1"],
            2,
            "--reading2 needs --reference2",
        ),
        (["climate"], 2, "the wizard needs a terminal"),
    ],
)
def test_bad_calibration_input_changes_nothing(config: Path, args: list[str], code: int, words: str) -> None:
    result = cli("calibrate", *args, "--config", str(config))
    assert result.returncode == code, (result.stdout, result.stderr)
    assert words in result.stdout + result.stderr
    shown = cli("calibration", "history", "climate", "--json", "--config", str(config))
    assert json.loads(shown.stdout) == []


def test_calibration_commands_bad_input(config: Path) -> None:
    c = ["--config", str(config)]
    assert cli("calibration", "history", "nope", *c).returncode == 2
    assert cli("calibration", "reset", "climate", "-q", "bogus_c", *c).returncode == 2
    nothing = cli("calibration", "rollback", "climate", *c)
    assert nothing.returncode == 1 and "nothing to roll back" in nothing.stderr
    assert cli("calibration", "reset", "climate", *c).returncode == 1
