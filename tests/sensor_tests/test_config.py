"""``[[tests]]`` validation: every problem named with its file, field path and test."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.errors import ConfigError
from edge_agent.settings import load_settings
from tests.conftest import DEFAULT_CONFIG

HEAD = """
[device]
id = "t-1"

[[sensors]]
name = "climate"
driver = "bme280"
bus = "sim"
address = 0x76

[[sensors]]
name = "cabinet"
driver = "sht3x"
bus = "sim"
address = 0x44

[[sensors]]
name = "gps"
driver = "nmea"
port = "sim://"
"""


def problems(tmp_path: Path, tests: str) -> list[str]:
    path = tmp_path / "c.toml"
    path.write_text(HEAD + tests)
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    return [f"{p.path}: {p.message}" for p in info.value.problems]


def test_default_config_tests_are_valid() -> None:
    settings = load_settings(DEFAULT_CONFIG, environ={})
    kinds = {t.kind for t in settings.tests}
    assert kinds == {"range", "noise", "stuck", "rate", "agreement", "self_test", "calibration_due"}
    assert all(t.schedule is not None and t.schedule <= 3600 for t in settings.tests)


@pytest.mark.parametrize(
    ("tests", "expected"),
    [
        (
            '[[tests]]\nname = "a"\nsensor = "nope"\nkind = "self_test"',
            "tests[0].sensor (test \"a\"): unknown sensor 'nope'",
        ),
        (
            '[[tests]]\nname = "a"\nsensor = "climate"\nkind = "smell"',
            "tests[0] (test \"a\"): Input tag 'smell'",
        ),
        (
            '[[tests]]\nname = "a"\nsensor = "climate"\nkind = "noise"\nquantity = "temperature_c"',
            'tests[0].max_std (test "a"): required but missing',
        ),
        (
            '[[tests]]\nname = "a"\nsensor = "climate"\nkind = "noise"\nquantity = "temperature_c"\nmax_std = 1\nmax_sdt = 2',
            "tests[0].max_sdt (test \"a\"): unknown key 'max_sdt' (did you mean 'max_std'?)",
        ),
        (
            '[[tests]]\nname = "a"\nsensor = "climate"\nkind = "noise"\nquantity = "temperature_c"\nmax_std = -1',
            'tests[0].max_std (test "a"): Input should be greater than 0',
        ),
        (
            '[[tests]]\nname = "a"\nsensor = "climate"\nkind = "stuck"\nquantity = "colour_k"',
            "tests[0].quantity (test \"a\"): sensor 'climate' does not report 'colour_k'",
        ),
        (
            '[[tests]]\nname = "a"\nsensor = "climate"\nkind = "range"\nlimits = { temperature_c = [5, 1] }',
            "minimum 5 is above maximum 1",
        ),
        (
            '[[tests]]\nname = "a"\nsensor = "climate"\nkind = "range"\nlimits = { bogus_c = [1, 5] }',
            "tests[0].limits.bogus_c (test \"a\"): sensor 'climate' does not report 'bogus_c'",
        ),
        (
            '[[tests]]\nname = "a"\nsensor = "climate"\nkind = "agreement"\nquantity = "temperature_c"\nother = "ghost"\ntolerance = 1',
            "tests[0].other (test \"a\"): unknown sensor 'ghost'",
        ),
        (
            '[[tests]]\nname = "a"\nsensor = "climate"\nkind = "agreement"\nquantity = "temperature_c"\nother = "climate"\ntolerance = 1',
            "compares the sensor with itself",
        ),
        (
            '[[tests]]\nname = "a"\nsensor = "climate"\nkind = "noise"\nquantity = "temperature_c"\nmax_std = 1\nsamples = 100\nspacing = "1s"',
            "more than timeout = 60 s",
        ),
        (
            '[[tests]]\nname = "a"\nsensor = "climate"\nkind = "self_test"\nschedule = "soon"',
            "is not a duration",
        ),
        (
            '[[tests]]\nname = "a"\nsensor = "climate"\nkind = "self_test"\n[[tests]]\nname = "a"\nsensor = "cabinet"\nkind = "self_test"',
            "tests[1].name (test \"a\"): test name 'a' is used twice",
        ),
        ('[[tests]]\nname = "Bad Name"\nsensor = "climate"\nkind = "self_test"', "tests[0].name"),
    ],
)
def test_bad_tests_are_config_errors(tmp_path: Path, tests: str, expected: str) -> None:
    found = problems(tmp_path, tests)
    assert any(expected in p for p in found), found
