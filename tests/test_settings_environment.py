"""``EDGE_…`` variables read by pydantic-settings: its errors are config problems, chained,
and a variable that does not take effect is a problem too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic_settings import SettingsError

from edge_agent.errors import ConfigError
from edge_agent.settings.environment import read_environment
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


# Every EDGE_ setting variable takes effect or is a problem naming it: pydantic-settings
# drops a JSON null for a section, and what is nested under a null, a list or a value.


@pytest.mark.parametrize(
    ("name", "advice"),
    [
        ("EDGE_MQTT", "give a JSON table, or remove [mqtt] from the file"),
        ("EDGE_DEVICE", "give a JSON table"),
        ("EDGE_SENSORS", "give a JSON list ([] for none)"),
        ("EDGE_TESTS", "give a JSON list ([] for none)"),
    ],
)
def test_null_for_a_section_is_a_problem_naming_the_variable(tmp_path: Path, name: str, advice: str) -> None:
    (problem,) = problems(write(tmp_path, GOOD), {name: "null"})
    section = name.removeprefix("EDGE_").lower()
    assert problem.startswith(f"environment variable {name}: {section}: has no effect: null ")
    assert advice in problem


def test_a_key_under_a_null_table_is_a_problem_naming_both_variables(tmp_path: Path) -> None:
    env = {"EDGE_MQTT__TLS": "null", "EDGE_MQTT__TLS__CA_FILE": "/x"}
    (problem,) = problems(write(tmp_path, GOOD), env)
    assert problem == (
        "environment variable EDGE_MQTT__TLS__CA_FILE: mqtt.tls.ca_file: has no effect: "
        "EDGE_MQTT__TLS=null turns mqtt.tls off; unset one of the two"
    )


def test_a_key_under_a_list_or_a_value_is_a_problem_naming_the_variable(tmp_path: Path) -> None:
    env = {"EDGE_SENSORS": "[]", "EDGE_SENSORS__X": "1"}
    env |= {"EDGE_MQTT__TLS__CA_FILE": "ca.pem", "EDGE_MQTT__TLS__CA_FILE__Y": "z"}
    found = problems(write(tmp_path, GOOD), env)
    assert len(found) == 2, found
    assert found[0].startswith(
        "environment variable EDGE_SENSORS__X: sensors.x: has no effect: EDGE_SENSORS sets sensors to a list"
    )
    assert "give the value in EDGE_SENSORS's JSON" in found[0]
    assert found[1].startswith(
        "environment variable EDGE_MQTT__TLS__CA_FILE__Y: mqtt.tls.ca_file.y: has no effect: "
        "EDGE_MQTT__TLS__CA_FILE sets mqtt.tls.ca_file to a value, not a table"
    )


TLS_FILE = GOOD.replace('host = "broker.local"', 'host = "broker.local"\n[mqtt.tls]\nca_file = "ca.pem"')


def test_null_for_tls_turns_the_files_tls_off(tmp_path: Path) -> None:
    assert load(write(tmp_path, TLS_FILE)).mqtt.tls is not None
    assert load(write(tmp_path, TLS_FILE), {"EDGE_MQTT__TLS": "null"}).mqtt.tls is None


def test_null_for_tls_turns_tls_off_over_an_enrolled_identity(tmp_path: Path) -> None:
    # The identity fills [mqtt.tls] when the configuration is silent; a null is not silence.
    identity = tmp_path / "state" / "identity"
    identity.mkdir(parents=True)
    for name in ("device.key", "device.pem", "ca.pem"):
        (identity / name).write_text(name)
    info = {"device_id": "dev-1", "auth_url": "http://x", "broker": {"host": "b", "port": 8883}}
    (identity / "enrollment.json").write_text(json.dumps(info))
    assert load(write(tmp_path, GOOD)).mqtt.tls is not None
    mqtt = load(write(tmp_path, GOOD), {"EDGE_MQTT__TLS": "null"}).mqtt
    assert mqtt.tls is None and (mqtt.host, mqtt.port) == ("broker.local", 1883)


def test_json_nested_too_deeply_is_one_problem_naming_the_variable(tmp_path: Path) -> None:
    # The JSON decoder raises RecursionError, which pydantic-settings lets through.
    env = read_environment({"EDGE_SENSORS": "[" * 3000, "EDGE_MQTT__PORT": "8883"})  # never raises
    assert env.data == {"mqtt": {"port": "8883"}}
    found = problems(write(tmp_path, GOOD), {"EDGE_SENSORS": "[" * 3000, "EDGE_MQTT__TLS": '{"a": ' * 3000})
    assert found == [
        f"environment variable {name}: {path}: expected JSON for a table or list: nested too deeply to decode"
        for name, path in (("EDGE_SENSORS", "sensors"), ("EDGE_MQTT__TLS", "mqtt.tls"))
    ]


@pytest.mark.parametrize("values", [("1", "x"), ("x", "1"), ("8883", "8883")])
def test_two_spellings_of_one_setting_are_one_problem_naming_both(
    tmp_path: Path, values: tuple[str, str]
) -> None:
    env = {"EDGE_MQTT__PORT": values[0], "edge_mqtt__port": values[1]}
    (problem,) = problems(write(tmp_path, GOOD), env)
    assert problem == (
        "environment variables EDGE_MQTT__PORT and edge_mqtt__port: mqtt.port: "
        "set twice (variable names are case-insensitive); keep one"
    )


def test_config_check_prints_one_line_per_variable_that_does_not_take_effect() -> None:
    env = {
        "EDGE_MQTT": "null",
        "EDGE_DEVICE": "null",
        "EDGE_STORAGE__MAX_AGE": "1d",  # takes effect: no line
        "EDGE_LOGGING__LEVEL": "debug",
        "edge_logging__level": "info",
        "EDGE_SENSORS": "[" * 3000,
    }
    result = cli("config", "check", "--config", str(DEFAULT_CONFIG), env=env)
    assert result.returncode == EX_CONFIG, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip().startswith("✗")]
    assert [line.split(": ")[0] for line in lines] == [
        "✗ environment variables EDGE_LOGGING__LEVEL and edge_logging__level",
        "✗ environment variable EDGE_SENSORS",
        "✗ environment variable EDGE_MQTT",
        "✗ environment variable EDGE_DEVICE",
    ], result.stderr


def test_driver_and_test_checks_name_the_variable_that_set_the_sensors(tmp_path: Path) -> None:
    sensors = [{"name": "level", "driver": "fakei2c", "bus": 1, "address": 0x11, "options": {"gain": -1}}]
    tests = [{"name": "t", "sensor": "nope", "kind": "self_test"}]
    found = problems(
        write(tmp_path, GOOD), {"EDGE_SENSORS": json.dumps(sensors), "EDGE_TESTS": json.dumps(tests)}
    )
    assert [p.split(": ")[:2] for p in found] == [
        ["environment variable EDGE_SENSORS", 'sensors[0].options.gain (sensor "level")'],
        ["environment variable EDGE_TESTS", 'tests[0].sensor (test "t")'],
    ]
