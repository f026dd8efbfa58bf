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


def test_an_address_out_of_range_is_reported_in_hex_as_written(tmp_path: Path) -> None:
    (problem,) = problems(write(tmp_path, GOOD.replace("address = 0x11", "address = 0x99")))
    assert "153 (0x99) is not a 7-bit I2C address; use 0x03 to 0x77" in problem
    assert "119" not in problem


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


# Wrong types anywhere in a file are problems naming the file and the field, never a
# traceback; checked with the real drivers, whose options are dataclasses validated by pydantic.
REAL = """
[device]
id = "dev-1"

[storage]
state_dir = "state"

[[sensors]]
name = "climate"
driver = "sht3x"
bus = "sim"
address = 0x44
options = { repeatability = "high" }

[[sensors]]
name = "analog"
driver = "ads1115"
bus = "sim"
address = 0x48
[sensors.options]
channels = [0, 1]
gain = 4.096
scaling = [
  { channel = 0, quantity = "level_m", input_min = 0.6, input_max = 3.0, output_min = 0.0, output_max = 5.0 },
]

[[tests]]
name = "level-range"
sensor = "analog"
kind = "range"
schedule = "1m"
limits = { level_m = [0.0, 5.0] }

[[tests]]
name = "climate-noise"
sensor = "climate"
kind = "noise"
quantity = "temperature_c"
samples = 5
spacing = "200ms"
max_std = 0.1

[[tests]]
name = "agree"
sensor = "climate"
kind = "agreement"
quantity = "temperature_c"
other = "analog"
other_quantity = "level_m"
tolerance = 1.0
"""
SCALING = REAL[REAL.index("scaling = [") : REAL.index("]\n", REAL.index("output_max")) + 1]
HUGE = "1" + "0" * 40


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        (SCALING, "scaling = 3", 'sensors[1].options.scaling (sensor "analog")'),
        (SCALING, "scaling = true", 'sensors[1].options.scaling (sensor "analog")'),
        (SCALING, "scaling = { a = 1 }", 'sensors[1].options.scaling (sensor "analog")'),
        (SCALING, "scaling = [3, [1], {}]", 'sensors[1].options.scaling[0] (sensor "analog")'),
        (
            SCALING,
            "scaling = [{ channel = [0], quantity = { a = [] } }]",
            "sensors[1].options.scaling[0].channel",
        ),
        ("channels = [0, 1]", "channels = 5", 'sensors[1].options.channels (sensor "analog")'),
        ("channels = [0, 1]", f"channels = [{HUGE}]", 'sensors[1].options.channels (sensor "analog")'),
        ("gain = 4.096", "gain = [4.096]", 'sensors[1].options.gain (sensor "analog")'),
        ("gain = 4.096", "gain = inf", 'sensors[1].options.gain (sensor "analog")'),
        ('options = { repeatability = "high" }', "options = [1]", 'sensors[0].options (sensor "climate")'),
        ('options = { repeatability = "high" }', "options = 3", 'sensors[0].options (sensor "climate")'),
        ('repeatability = "high"', "repeatability = { a = { b = [1] } }", "sensors[0].options.repeatability"),
        ("limits = { level_m = [0.0, 5.0] }", "limits = 3", 'tests[0].limits (test "level-range")'),
        ("limits = { level_m = [0.0, 5.0] }", "limits = [[0, 1]]", 'tests[0].limits (test "level-range")'),
        ("limits = { level_m = [0.0, 5.0] }", "limits = { level_m = 5 }", "tests[0].limits.level_m"),
        (
            "limits = { level_m = [0.0, 5.0] }",
            "limits = { level_m = [[], {}] }",
            "tests[0].limits.level_m[0]",
        ),
        ("limits = { level_m = [0.0, 5.0] }", "limits = { level_m = [0, 1, 2] }", "tests[0].limits.level_m"),
        ('schedule = "1m"', "schedule = { every = 1 }", 'tests[0].schedule (test "level-range")'),
        ('kind = "range"', "kind = [1]", 'tests[0] (test "level-range")'),
        ("samples = 5", "samples = [5]", 'tests[1].samples (test "climate-noise")'),
        ("samples = 5", f"samples = {HUGE}", 'tests[1].samples (test "climate-noise")'),
        (
            'quantity = "temperature_c"\nsamples',
            "quantity = 3\nsamples",
            'tests[1].quantity (test "climate-noise")',
        ),
        ('other = "analog"', "other = []", 'tests[2].other (test "agree")'),
        ("tolerance = 1.0", 'tolerance = "close"', 'tests[2].tolerance (test "agree")'),
    ],
)
def test_wrong_types_in_options_and_tests_are_problems_naming_file_and_field(
    tmp_path: Path, old: str, new: str, field: str
) -> None:
    assert old in REAL
    path = write(tmp_path, REAL.replace(old, new))
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    found = [str(p) for p in info.value.problems]
    assert all(p.startswith(f"{path}: ") for p in found), found
    assert any(p.startswith(f"{path}: {field}") for p in found), found


def test_invalid_scaling_does_not_make_the_tests_of_its_quantities_fail_too(tmp_path: Path) -> None:
    # What an invalid scaling renames is unknown: "level_m" is not reported as missing.
    path = write(tmp_path, REAL.replace(SCALING, "scaling = [{ channel = 9, quantity = 1 }]"))
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert not [p for p in info.value.problems if p.path.startswith("tests")], info.value.problems


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


def test_a_path_that_cannot_be_resolved_is_a_problem_at_its_field(tmp_path: Path) -> None:
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    text = GOOD.replace('state_dir = "state"', 'state_dir = "loop"')
    (problem,) = problems(write(tmp_path, text))
    assert problem.startswith(f"{tmp_path / 'edge-agent.toml'}: storage.state_dir: cannot be resolved:")
    text = GOOD.replace('host = "broker.local"', 'host = "b"\n[mqtt.tls]\nca_file = "ca\\u0000.pem"')
    (problem,) = problems(write(tmp_path, text))
    assert problem.endswith("mqtt.tls.ca_file: a path cannot contain a NUL byte (\\u0000)")


def test_config_check_prints_one_line_for_each_file_problem_and_exits_78(tmp_path: Path) -> None:
    from tests.test_cli import EX_CONFIG, cli

    loop = tmp_path / "loop.toml"
    loop.symlink_to(loop)
    deep = tmp_path / "deep.toml"
    deep.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    scaling = tmp_path / "scaling.toml"
    scaling.write_text(REAL.replace(SCALING, "scaling = 3"))
    for path in (loop, deep, scaling):
        result = cli("config", "check", "--config", str(path))
        assert result.returncode == EX_CONFIG, result.stderr
        assert "Traceback" not in result.stderr
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip().startswith("✗")]
        assert len(lines) == 1 and lines[0].startswith(f"✗ {path}: "), result.stderr


def test_home_assistant_needs_a_device_id_it_can_use_as_node_id(tmp_path: Path) -> None:
    text = GOOD + "\n[homeassistant]\nenabled = true\n"
    assert load(write(tmp_path, text)).homeassistant.enabled
    (problem,) = problems(write(tmp_path, text.replace('id = "dev-1"', 'id = "site.01"')))
    assert "homeassistant.enabled needs a device.id of letters, digits, _ and - only" in problem
