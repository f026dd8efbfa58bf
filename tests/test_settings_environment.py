"""``EDGE_…`` variables read by pydantic-settings: its errors are config problems, chained."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic_settings import SettingsError

from edge_agent.errors import ConfigError
from tests.conftest import DEFAULT_CONFIG
from tests.test_cli import EX_CONFIG, cli
from tests.test_settings import GOOD, load, problems, write

BROKEN = {"EDGE_MQTT": "{bad", "EDGE_MQTT__PORT": "x", "EDGE_MQQT__HOST": "x"}


def test_config_check_prints_one_line_per_environment_problem_and_exits_78() -> None:
    result = cli("config", "check", "--config", str(DEFAULT_CONFIG), env=BROKEN)
    assert result.returncode == EX_CONFIG, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip().startswith("✗")]
    assert len(lines) == 3, result.stderr
    assert any(line.startswith("✗ environment variable EDGE_MQTT: mqtt: expected JSON") for line in lines)
    assert any(line.startswith("✗ environment variable EDGE_MQTT__PORT: mqtt.port:") for line in lines)
    assert "✗ environment variable EDGE_MQQT__HOST: unknown key 'mqqt' (did you mean 'mqtt'?)" in lines


def test_the_config_error_is_chained_to_what_pydantic_settings_raised(tmp_path: Path) -> None:
    try:
        load(write(tmp_path, GOOD), BROKEN)
    except ConfigError as exc:
        assert isinstance(exc.__cause__, SettingsError)
        assert len(exc.problems) == 3
    else:
        raise AssertionError("the broken variables were accepted")


def test_a_nested_variable_refines_a_json_table_whatever_their_order(tmp_path: Path) -> None:
    env = {"EDGE_MQTT__TLS__CERT_FILE": "c.pem", "EDGE_MQTT__TLS": json.dumps({"ca_file": "ca.pem"})}
    env["EDGE_MQTT__TLS__KEY_FILE"] = "k.pem"
    tls = load(write(tmp_path, GOOD), env).mqtt.tls
    assert tls is not None and (tls.ca_file.name, tls.cert_file, tls.key_file) == (
        "ca.pem",
        (tmp_path / "c.pem").resolve(),
        (tmp_path / "k.pem").resolve(),
    )


def test_bad_json_for_a_list_names_the_variable(tmp_path: Path) -> None:
    (problem,) = problems(write(tmp_path, GOOD), {"EDGE_SENSORS": "[{"})
    assert problem.startswith("environment variable EDGE_SENSORS: sensors: expected JSON for a table or list")
