"""Every driver class, called directly as a script calls it, with an option value of the wrong
type or an absurd size: an ``OptionError`` naming the option, before the bus or port is touched.

The agent's config check meets these values typed by pydantic first; a script does not, so
the driver's own checks are all that stands between a typo and a ``TypeError`` from deep
inside (``tuple(5)``), an ``OverflowError`` from ``math.isfinite(10**400)`` or a sleep of
1e300 seconds.  An unknown keyword is Python's own ``TypeError`` (the classes have explicit
keyword signatures), tested at the end.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import pytest

from edge_drivers.ads1115 import ADS1115
from edge_drivers.api import OptionError
from edge_drivers.bme280 import BME280
from edge_drivers.nmea import NMEAGPS
from edge_drivers.pms5003 import PMS5003
from edge_drivers.sht3x import SHT3x


class Untouchable:
    """A bus or port that fails the test if the driver uses it before its options are checked."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the driver used the bus/port ({name}) before checking its options")


def bme280(**options: Any) -> object:
    return BME280(Untouchable(), 0x76, **options)  # type: ignore[arg-type]


def sht3x(**options: Any) -> object:
    return SHT3x(Untouchable(), 0x44, **options)  # type: ignore[arg-type]


def ads1115(**options: Any) -> object:
    return ADS1115(Untouchable(), 0x48, **options)  # type: ignore[arg-type]


def pms5003(**options: Any) -> object:
    return PMS5003(Untouchable(), **options)  # type: ignore[arg-type]


def nmea(**options: Any) -> object:
    return NMEAGPS(Untouchable(), **options)  # type: ignore[arg-type]


HUGE_INT = 10**400  # beyond a float: math.isfinite() and float() raise OverflowError
ENORMOUS_INT = 10**5000  # beyond what repr() may print (the 4300-digit limit)
NOT_INTS = [None, "4", "", 4.0, 4.5, True, [4], {"value": 4}, HUGE_INT, ENORMOUS_INT, math.nan, math.inf]
NOT_SECONDS = [None, "1.0", "", True, [1.0], HUGE_INT, ENORMOUS_INT, 1e300, math.nan, math.inf, -math.inf]
NOT_STRINGS = [None, 1, True, b"high", ["high"], {"high": 1}]
NOT_BOOLS = [None, "true", "", 1, 0, [True]]

LOOP = {"channel": 0, "quantity": "water_level_m", "input_min": 0.6, "input_max": 3.0, "output_min": 0.0, "output_max": 5.0}  # fmt: skip
NOT_CHANNELS = [5, None, "0123", b"\x00\x01", [0.0], [True], [None], ["0"], [HUGE_INT], {0: 1}, {0, 1}, (c for c in (0, 1))]  # fmt: skip
NOT_SCALINGS = [
    5,
    None,
    "water_level_m",
    LOOP,  # one table where a list of them goes
    [5],
    [None],
    [{1: 2}],
    [{**LOOP, "channel": "0"}],
    [{**LOOP, "channel": 0.0}],
    [{**LOOP, "quantity": 5}],
    [{**LOOP, "input_min": "0.6"}],
    [{**LOOP, "input_min": None}],
    [{**LOOP, "input_min": HUGE_INT}],
    [{**LOOP, "input_max": ENORMOUS_INT}],
    [{**LOOP, "output_min": -1e308, "output_max": 1e308}],  # a span beyond a float
    [{**LOOP, "input_min": -1e308, "input_max": 1e308}],
    [{**LOOP, "clamp": "yes"}],
    [{**LOOP, "underrange_margin": None}],
    [{**LOOP, "overrange_margin": HUGE_INT}],
]

CASES: list[tuple[str, Callable[..., object], str, object]] = [
    *[
        ("bme280", bme280, option, value)
        for option in (
            "oversampling_temperature",
            "oversampling_pressure",
            "oversampling_humidity",
            "iir_filter",
        )
        for value in NOT_INTS
    ],
    *[("sht3x", sht3x, "repeatability", value) for value in NOT_STRINGS],
    *[("sht3x", sht3x, "heater_test_s", value) for value in NOT_SECONDS],
    *[("ads1115", ads1115, "channels", value) for value in NOT_CHANNELS],
    *[("ads1115", ads1115, "gain", value) for value in [*NOT_SECONDS, 4]],
    *[("ads1115", ads1115, "data_rate", value) for value in NOT_INTS],
    *[("ads1115", ads1115, "scaling", value) for value in NOT_SCALINGS],
    *[("pms5003", pms5003, "mode", value) for value in NOT_STRINGS],
    *[("pms5003", pms5003, option, value) for option in ("timeout_s", "warmup_s") for value in NOT_SECONDS],
    *[("nmea", nmea, "timeout_s", value) for value in NOT_SECONDS],
    *[("nmea", nmea, "require_checksum", value) for value in NOT_BOOLS],
]


def _id(value: object) -> str:
    try:  # the same id in every pytest-xdist worker: no memory address
        return re.sub(r" at 0x[0-9a-f]+", "", repr(value))[:40]
    except ValueError:  # an int too long to print, possibly inside a list
        return "enormous"


@pytest.mark.parametrize(
    ("driver", "make", "option", "value"),
    CASES,
    ids=[f"{driver}-{option}-{_id(value)}" for driver, _, option, value in CASES],
)
def test_a_bad_option_value_is_an_option_error_naming_it(
    driver: str, make: Callable[..., object], option: str, value: object
) -> None:
    with pytest.raises(OptionError) as info:
        make(**{option: value})
    error = info.value
    assert error.driver == driver
    assert error.path[:1] == (option,)
    message = str(error)
    assert message.startswith(f"{driver} option {option}"), message
    assert len(message) < 300, message  # an enormous value is described, not printed whole


@pytest.mark.parametrize("make", [bme280, sht3x, ads1115, pms5003, nmea])
def test_an_unknown_keyword_is_pythons_type_error(make: Callable[..., object]) -> None:
    """The driver classes have explicit keyword signatures (IDE help, type checking), so a
    misspelt keyword fails as any Python call does; the options classes name the closest one."""
    with pytest.raises(TypeError, match="unexpected keyword argument 'gian'"):
        make(gian=2)
