"""A sensor's options table against its driver's options class: stdlib dataclasses and pydantic models alike.

The drivers declare options as standard library dataclasses (edge-drivers does not depend
on pydantic); the agent validates them with pydantic, unknown keys included, and names the
field of every problem, nested ones too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.errors import ConfigError
from edge_agent.sampling.driver_options import validate_options
from edge_agent.sampling.registry import DriverRegistry, RegisteredDriver, load_registry
from edge_agent.settings import load_settings
from edge_drivers.ads1115 import ChannelScaling
from edge_drivers.ads1115 import Options as ADS1115Options
from tests.conftest import DEFAULT_CONFIG
from tests.fake_driver import FAKE_I2C, FAKE_PLAIN, FakeOptions, PlainOptions

REGISTRY = DriverRegistry(
    drivers={
        "fakei2c": RegisteredDriver(FAKE_I2C, "tests 0", "tests.fake_driver:FAKE_I2C"),
        "fakeplain": RegisteredDriver(FAKE_PLAIN, "tests 0", "tests.fake_driver:FAKE_PLAIN"),
    }
)

CONFIG = """
[device]
id = "dev-1"

[[sensors]]
name = "plain"
driver = "fakeplain"
bus = 1
address = 0x30
options = { mode = "slow", windows = [{ start_s = 1, length_s = 2 }] }
"""


def problems(tmp_path: Path, text: str, registry: DriverRegistry = REGISTRY) -> list[str]:
    path = tmp_path / "edge-agent.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={}, registry=registry)
    return [p.path + ": " + p.message for p in info.value.problems]


def test_a_plain_dataclass_is_validated_and_dumped_to_keyword_arguments(tmp_path: Path) -> None:
    path = tmp_path / "edge-agent.toml"
    path.write_text(CONFIG)
    sensor = load_settings(path, environ={}, registry=REGISTRY).sensors[0]
    assert sensor.options == {"mode": "slow", "windows": ({"start_s": 1.0, "length_s": 2.0},)}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ('{ mode = "medium" }', "sensors[0].options.mode (sensor \"plain\"): must be 'fast' or 'slow'"),
        (
            '{ mdoe = "slow" }',
            "sensors[0].options.mdoe (sensor \"plain\"): unknown key 'mdoe' (did you mean 'mode'?)",
        ),
        (
            "{ windows = [{ length_s = 0 }] }",
            'sensors[0].options.windows[0].length_s (sensor "plain"): must be positive',
        ),
        (
            "{ windows = [{ lenght_s = 2 }] }",
            "sensors[0].options.windows[0].lenght_s (sensor \"plain\"): unknown key 'lenght_s' (did you mean 'length_s'?)",
        ),
        (
            '{ windows = [{ start_s = "soon" }] }',
            'sensors[0].options.windows[0].start_s (sensor "plain"): Input should be a valid number',
        ),
    ],
    ids=["rule", "unknown-key", "nested-rule", "nested-unknown-key", "nested-type"],
)
def test_a_plain_dataclass_names_each_bad_field(tmp_path: Path, options: str, expected: str) -> None:
    text = CONFIG.replace(
        'options = { mode = "slow", windows = [{ start_s = 1, length_s = 2 }] }', f"options = {options}"
    )
    (found,) = problems(tmp_path, text)
    assert found.startswith(expected), found


def test_every_problem_of_a_table_is_reported(tmp_path: Path) -> None:
    text = CONFIG.replace(
        'options = { mode = "slow", windows = [{ start_s = 1, length_s = 2 }] }',
        'options = { typo = 1, windows = [{ start_s = "x" }, { extra = 2 }] }',
    )
    found = problems(tmp_path, text)
    assert len(found) == 3, found


def test_a_pydantic_model_keeps_its_own_rules() -> None:
    assert validate_options(FakeOptions, {"gain": 2}) == ({"gain": 2.0}, [])
    _, (problem,) = validate_options(FakeOptions, {"gain": -1})
    assert problem.loc == ("gain",) and "greater than 0" in problem.message
    _, (unknown,) = validate_options(FakeOptions, {"gian": 1})
    assert unknown.unknown_key == "gian" and unknown.known_keys == {"gain"}


def test_the_built_in_ads1115_options_through_the_agent() -> None:
    table = {
        "channels": [0, 2],
        "gain": 2.048,
        "scaling": [
            {
                "channel": 2,
                "quantity": "depth_m",
                "input_min": 0.6,
                "input_max": 3,
                "output_min": 0,
                "output_max": 5,
            }
        ],
    }
    options, problems_ = validate_options(ADS1115Options, table)
    assert problems_ == []
    assert options["channels"] == (0, 2) and options["scaling"][0]["input_max"] == 3.0
    # What the agent hands the driver builds the same options a script would.
    assert ADS1115Options(**options) == ADS1115Options(
        channels=(0, 2),
        gain=2.048,
        scaling=(ChannelScaling(**table["scaling"][0]),),
    )
    _, problems_ = validate_options(ADS1115Options, {**table, "channels": [0]})
    assert [(p.loc, p.message) for p in problems_] == [
        (("scaling", 0, "channel"), "channel 2 (depth_m) is not in channels [0]")
    ]
    _, problems_ = validate_options(ADS1115Options, {"scaling": [{**table["scaling"][0], "chanel": 1}]})
    assert [(p.loc, p.unknown_key) for p in problems_] == [(("scaling", 0, "chanel"), "chanel")]
    assert "channel" in problems_[0].known_keys


def test_the_default_config_passes_its_options_as_plain_values() -> None:
    settings = load_settings(DEFAULT_CONFIG, environ={}, registry=load_registry())
    analog = settings.sensor("analog")
    assert analog is not None
    assert analog.options["scaling"][0]["quantity"] == "water_level_m"
    assert isinstance(analog.options["scaling"][0], dict)


def test_plain_options_class_is_a_stdlib_dataclass() -> None:
    assert PlainOptions(mode="slow").mode == "slow"
    with pytest.raises(ValueError, match="fakeplain option mode='medium': must be 'fast' or 'slow'"):
        PlainOptions(mode="medium")
