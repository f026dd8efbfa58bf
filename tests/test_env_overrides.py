"""``EDGE_…`` variables over the TOML file: nesting, JSON tables and lists, and the errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent.settings import Settings
from tests.test_settings import GOOD, load, problems, write


def test_a_json_table_and_a_nested_variable_merge_into_the_files_table(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    env = {
        "EDGE_MQTT__TLS": json.dumps({"ca_file": str(ca)}),
        "edge_mqtt__tls__cert_file": str(tmp_path / "c.pem"),  # names are case-insensitive
        "EDGE_MQTT__TLS__KEY_FILE": str(tmp_path / "k.pem"),
        "EDGE_MQTT__PORT": "8883",
    }
    settings = load(write(tmp_path, GOOD), env)
    assert settings.mqtt.host == "broker.local"  # the file's other [mqtt] keys stay
    assert settings.mqtt.port == 8883
    assert settings.mqtt.tls is not None
    assert (settings.mqtt.tls.ca_file, settings.mqtt.tls.key_file) == (ca, tmp_path / "k.pem")


def test_a_list_is_json_and_replaces_the_files_list(tmp_path: Path) -> None:
    sensors = [{"name": "only", "driver": "fakeserial", "port": "/dev/ttyS0"}]
    settings = load(write(tmp_path, GOOD), {"EDGE_SENSORS": json.dumps(sensors)})
    assert [s.name for s in settings.sensors] == ["only"]


def test_a_scalar_stays_a_string_for_pydantic_to_convert(tmp_path: Path) -> None:
    # "[1]" is not JSON-decoded for a string field: the host is literally "[1]".
    settings = load(write(tmp_path, GOOD), {"EDGE_MQTT__HOST": "[1]", "EDGE_METRICS__ENABLED": "false"})
    assert settings.mqtt.host == "[1]"
    assert settings.metrics.enabled is False


@pytest.mark.parametrize("value", ["{not json", "", '{"ca_file": ', "\x00"])
def test_bad_json_for_a_table_is_a_problem_naming_the_variable(tmp_path: Path, value: str) -> None:
    (problem,) = problems(write(tmp_path, GOOD), {"EDGE_MQTT__TLS": value})
    assert problem.startswith("environment variable EDGE_MQTT__TLS: mqtt.tls: expected JSON")


def test_json_of_the_wrong_shape_and_unknown_nested_keys_name_the_variable(tmp_path: Path) -> None:
    found = problems(
        write(tmp_path, GOOD), {"EDGE_STORAGE": "[1, 2]", "EDGE_MQTT__HOTS": "x", "EDGE_DEVICE__ID": "a/b"}
    )
    joined = "\n".join(found)
    assert "environment variable EDGE_STORAGE: storage:" in joined
    assert (
        "environment variable EDGE_MQTT__HOTS: mqtt.hots: unknown key 'hots' (did you mean 'host'?)" in joined
    )
    assert "environment variable EDGE_DEVICE__ID: device.id:" in joined


def test_the_files_data_is_not_modified_and_other_variables_are_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('host = "broker.local"', 'host = "a"\n[mqtt.tls]\nca_file = "x"'))
    text = path.read_text()
    env = {"EDGE_MQTT__TLS__CA_FILE": "y", "PATH": "/bin", "EDGE_CONFIG": "f"}
    settings = load(path, env)
    assert settings.mqtt.host == "a"
    assert settings.mqtt.tls is not None and settings.mqtt.tls.ca_file == (tmp_path / "y").resolve()
    assert path.read_text() == text
    # EDGE_ variables naming no setting are not dropped silently: they are problems.
    found = problems(path, {**env, "EDGE_NOPE": "1", "EDGE_": "1"})
    assert [p.split(": ")[0] for p in found] == [
        "environment variable EDGE_NOPE",
        "environment variable EDGE_",
    ]
    assert all("unknown key" in p for p in found)


def test_settings_built_directly_ignore_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_MQTT__HOST", "from-env")
    assert Settings(device={"id": "d"}).mqtt.host == "localhost"  # type: ignore[arg-type]
