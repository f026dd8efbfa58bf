"""Settings: TOML + EDGE_ env overrides, and every config error named by file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.errors import ConfigError
from edge_agent.sampling.registry import DriverRegistry, RegisteredDriver
from edge_agent.settings import format_path, load_settings
from edge_agent.units import parse_duration, parse_size
from tests.fake_driver import FAKE_I2C, FAKE_SERIAL

REGISTRY = DriverRegistry(
    drivers={
        "fakei2c": RegisteredDriver(FAKE_I2C, "tests 0", "tests.fake_driver:FAKE_I2C"),
        "fakeserial": RegisteredDriver(FAKE_SERIAL, "tests 0", "tests.fake_driver:FAKE_SERIAL"),
    }
)

GOOD = """
[device]
id = "dev-1"

[storage]
state_dir = "state"
max_bytes = "1MiB"
max_age = "2d"

[mqtt]
host = "broker.local"

[[sensors]]
name = "level"
driver = "fakei2c"
bus = 1
address = 0x11
interval = "250ms"
options = { gain = 2.5 }

[[sensors]]
name = "counter"
driver = "fakeserial"
port = "/dev/ttyUSB0"
baudrate = 115200
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edge-agent.toml"
    path.write_text(text)
    return path


def load(path: Path, env: dict[str, str] | None = None):
    return load_settings(path, environ=env or {}, registry=REGISTRY)


def problems(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(path, env)
    return [str(p) for p in info.value.problems]


def test_good_file_loads_with_units_and_relative_paths(tmp_path: Path) -> None:
    settings = load(write(tmp_path, GOOD))
    assert settings.device.id == "dev-1"
    assert settings.storage.max_bytes == 1024 * 1024
    assert settings.storage.max_age == 2 * 86400
    assert settings.storage.state_dir == (tmp_path / "state").resolve()
    level = settings.sensor("level")
    assert level is not None
    assert (level.bus, level.address, level.interval) == (1, 0x11, 0.25)
    assert level.options == {"gain": 2.5}
    counter = settings.sensor("counter")
    assert counter is not None and counter.baudrate == 115200


def test_env_overrides_toml_nested_with_double_underscore(tmp_path: Path) -> None:
    env = {"EDGE_MQTT__HOST": "override.example", "EDGE_MQTT__PORT": "8883", "EDGE_DEVICE__ID": "dev-9"}
    settings = load(write(tmp_path, GOOD), env)
    assert settings.mqtt.host == "override.example"
    assert settings.mqtt.port == 8883
    assert settings.device.id == "dev-9"
    assert settings.sensor("level") is not None  # the TOML's sensors survive a partial override


def test_missing_file(tmp_path: Path) -> None:
    (problem,) = problems(tmp_path / "nope.toml")
    assert "nope.toml" in problem and "file not found" in problem and "--config" in problem


def test_bad_toml_names_line_and_column(tmp_path: Path) -> None:
    (problem,) = problems(write(tmp_path, "[device]\nid = \n"))
    assert "invalid TOML" in problem and "line 2" in problem


def test_unknown_keys_are_errors_with_suggestions(tmp_path: Path) -> None:
    text = GOOD.replace('host = "broker.local"', 'hots = "broker.local"').replace(
        "address = 0x11", "adress = 0x11"
    )
    text += "\n[extra]\nx = 1\n"
    found = problems(write(tmp_path, text))
    joined = "\n".join(found)
    assert "mqtt.hots: unknown key 'hots' (did you mean 'host'?)" in joined
    assert 'sensors[0].adress (sensor "level"): unknown key' in joined and "'address'" in joined
    assert "extra: unknown key 'extra'" in joined
    assert all(p.startswith(str(tmp_path / "edge-agent.toml")) for p in found)


def test_wrong_type_names_field_path(tmp_path: Path) -> None:
    text = GOOD.replace("baudrate = 115200", 'baudrate = "fast"')
    (problem,) = problems(write(tmp_path, text))
    assert 'sensors[1].baudrate (sensor "counter"):' in problem and "integer" in problem


def test_every_problem_is_reported_not_only_the_first(tmp_path: Path) -> None:
    text = (
        GOOD.replace('id = "dev-1"', 'id = "bad/id"')
        .replace("port = 1883", "")
        .replace('interval = "250ms"', 'interval = "soon"')
    )
    found = problems(write(tmp_path, text))
    assert any(
        p.endswith("device.id: String should match pattern '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$'")
        for p in found
    )
    assert any("sensors[0].interval (sensor \"level\"): 'soon' is not a duration" in p for p in found)


def test_missing_device_section(tmp_path: Path) -> None:
    (problem,) = problems(write(tmp_path, "[mqtt]\nhost = 'x'\n"))
    assert problem.endswith("device: required but missing")


def test_driver_level_checks(tmp_path: Path) -> None:
    text = GOOD.replace("address = 0x11", "address = 0x50").replace("gain = 2.5", "gain = -1, typo = 3")
    text = text.replace('driver = "fakeserial"', 'driver = "fakeseria"')
    found = problems(write(tmp_path, text))
    joined = "\n".join(found)
    assert (
        "sensors[0].address (sensor \"level\"): 0x50 is not an address 'fakei2c' can live at (0x10, 0x11)"
        in joined
    )
    assert "sensors[0].options.gain" in joined and "greater than 0" in joined
    assert "sensors[0].options.typo" in joined and "unknown key 'typo'" in joined
    assert (
        "sensors[1].driver (sensor \"counter\"): unknown driver 'fakeseria'; did you mean 'fakeserial'?"
        in joined
    )


def test_bus_fields_must_fit_the_driver_bus_kind(tmp_path: Path) -> None:
    text = GOOD.replace('port = "/dev/ttyUSB0"', "bus = 1\naddress = 0x10")
    text = text.replace("address = 0x11", 'address = 0x11\nport = "/dev/ttyS0"')
    joined = "\n".join(problems(write(tmp_path, text)))
    assert "sensors[0].port (sensor \"level\"): not used by the I2C driver 'fakei2c'" in joined
    assert "sensors[1].bus (sensor \"counter\"): not used by the serial driver 'fakeserial'" in joined
    assert 'sensors[1].port (sensor "counter"): required for the serial driver' in joined


def test_duplicate_sensor_names(tmp_path: Path) -> None:
    text = GOOD.replace('name = "counter"', 'name = "level"')
    (problem,) = problems(write(tmp_path, text))
    assert "sensor name 'level' is used twice" in problem


def test_env_errors_name_the_variable(tmp_path: Path) -> None:
    found = problems(write(tmp_path, GOOD), {"EDGE_MQTT__PORT": "not-a-port", "EDGE_MQQT__HOST": "x"})
    joined = "\n".join(found)
    assert "environment variable EDGE_MQTT__PORT: mqtt.port:" in joined
    assert "environment variable EDGE_MQQT__HOST: unknown key 'mqqt' (did you mean 'mqtt'?)" in joined


def test_edge_config_variable_is_not_a_setting(tmp_path: Path) -> None:
    load(write(tmp_path, GOOD), {"EDGE_CONFIG": "/somewhere/else.toml"})


def test_hex_address_from_string(tmp_path: Path) -> None:
    settings = load(write(tmp_path, GOOD.replace("address = 0x11", 'address = "0x10"')))
    level = settings.sensor("level")
    assert level is not None and level.address == 0x10


def test_tls_cert_without_key(tmp_path: Path) -> None:
    text = GOOD + '\n[mqtt.tls]\nca_file = "ca.pem"\ncert_file = "dev.pem"\n'
    text = text.replace('[mqtt]\nhost = "broker.local"\n', "")
    text = text.replace("[mqtt.tls]", '[mqtt]\nhost = "broker.local"\n[mqtt.tls]')
    (problem,) = problems(write(tmp_path, text))
    assert "mqtt.tls: cert_file and key_file go together" in problem


def test_format_path() -> None:
    assert (
        format_path(("sensors", 2, "options", "scaling", 0, "quantity"))
        == "sensors[2].options.scaling[0].quantity"
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(5, 5.0), (0.5, 0.5), ("250ms", 0.25), ("10s", 10.0), ("5m", 300.0), ("7d", 604800.0)],
)
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "5 parsecs", True, None, ""])
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("text", "size"), [(10, 10), ("256MiB", 256 * 2**20), ("2GB", 2 * 10**9), ("1.5KiB", 1536)]
)
def test_parse_size(text: object, size: int) -> None:
    assert parse_size(text) == size


def test_a_file_that_cannot_be_read_or_parsed_is_one_problem_naming_it(tmp_path: Path) -> None:
    loop = tmp_path / "loop.toml"
    loop.symlink_to(loop)
    deep = write(tmp_path, "x = " + "[" * 5000 + "]" * 5000 + "\n")
    assert problems(loop) == [f"{loop}: cannot read the file: Too many levels of symbolic links"]
    assert problems(deep) == [f"{deep}: invalid TOML: arrays or tables nested too deeply"]
    huge = write(tmp_path, "x = " + "1" * 5000 + "\n")  # tomllib lets int()'s ValueError through
    (problem,) = problems(huge)
    assert (
        problem.startswith(f"{huge}: invalid TOML: Exceeds the limit (4300 digits)") and "sys." not in problem
    )
