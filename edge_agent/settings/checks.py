"""The settings' cross-checks: what pydantic cannot know from the models alone.

They run after the generic validation, with the drivers found through the entry-point
registry: a sensor's driver exists, its bus fields fit the driver's bus kind, its
address is one the chip can live at, its ``options`` table is valid against the
driver's own model (:func:`check_drivers`); each ``[[tests]]`` names a sensor that
exists and is enabled, quantities it reports, a driver with a self-test
(:func:`check_tests`).  Every problem names the field, and where its value came from: the
file, or the ``EDGE_…`` variable that set the sensors or the tests.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from edge_agent.errors import ConfigProblem
from edge_agent.sampling.driver_options import validate_options
from edge_agent.sampling.registry import DriverRegistry
from edge_agent.sensor_tests.config import AgreementTest, RangeTest, SelfTest
from edge_agent.settings.models import SIM_PORT_SCHEME, SensorSettings, Settings
from edge_agent.settings.problems import format_path
from edge_protocol.config_errors import unknown_key

Where = Callable[[tuple[str | int, ...]], str]
"""Where the value at a field path came from: the file, or the variable that set it."""


def check_drivers(
    settings: Settings, where: Where, registry: DriverRegistry
) -> tuple[Settings, list[ConfigProblem]]:
    """Driver-dependent checks; returns settings with each ``options`` table normalised."""
    problems: list[ConfigProblem] = []
    sensors: list[SensorSettings] = []
    for i, sensor in enumerate(settings.sensors):

        def problem(field: str, message: str, i: int = i, name: str = sensor.name) -> None:
            path = f"sensors[{i}].{field}" + f' (sensor "{name}")'
            problems.append(ConfigProblem(where(("sensors", i)), path, message))

        found = registry.get(sensor.driver)
        if found is None:
            close = difflib.get_close_matches(sensor.driver, registry.names(), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problem(
                "driver", f"unknown driver {sensor.driver!r}; {hint}installed: {', '.join(registry.names())}"
            )
            sensors.append(sensor)
            continue
        spec = found.spec
        if spec.bus == "i2c":
            if sensor.bus is None:
                problem("bus", f'required for the I2C driver {spec.name!r}: a bus number such as 1, or "sim"')
            if sensor.address is None:
                problem("address", f"required for {spec.name!r}; it can live at {_hex_list(spec.addresses)}")
            elif sensor.address not in spec.addresses:
                problem(
                    "address",
                    f"0x{sensor.address:02x} is not an address {spec.name!r} can live at "
                    f"({_hex_list(spec.addresses)})",
                )
            for name in ("port", "baudrate"):
                if getattr(sensor, name) is not None:
                    problem(name, f"not used by the I2C driver {spec.name!r}; remove it")
        else:
            if not sensor.port:
                problem("port", f"required for the serial driver {spec.name!r}: e.g. /dev/serial0, or sim://")
            for name in ("bus", "address"):
                if getattr(sensor, name) is not None:
                    problem(name, f"not used by the serial driver {spec.name!r} (use port); remove it")
            if sensor.port and sensor.port.startswith(SIM_PORT_SCHEME) and spec.bus == "modbus":
                # sim://NAME: a simulated line of the driver's own simulator, NAME telling lines apart.
                if registry.simulator(spec.name) is None:
                    problem(
                        "port", f"driver {spec.name!r} {registry.no_simulator(spec.name)}; use a real port"
                    )
            elif sensor.port and sensor.port.startswith(SIM_PORT_SCHEME):
                target = sensor.port.removeprefix(SIM_PORT_SCHEME) or spec.name
                other = registry.get(target)
                if other is None or registry.simulator(target) is None or other.spec.bus != "serial":
                    problem(
                        "port", f"no serial simulator named {target!r}; use sim:// for {spec.name!r}'s own"
                    )
        if sensor.simulated and spec.bus == "i2c" and registry.simulator(spec.name) is None:
            problem("bus", f"driver {spec.name!r} {registry.no_simulator(spec.name)}; use a real bus number")
        options = sensor.options
        if spec.options is not None:
            options, option_problems = validate_options(spec.options, sensor.options)
            for p in option_problems:
                msg = p.message
                if p.unknown_key is not None:
                    msg = unknown_key(p.unknown_key, set(p.known_keys))
                problem(format_path(("options", *p.loc)), msg)
        elif sensor.options:
            problem("options", f"driver {spec.name!r} takes no options")
        sensors.append(sensor.model_copy(update={"options": options}))
    return settings.model_copy(update={"sensors": sensors}), problems


def _hex_list(addresses: tuple[int, ...]) -> str:
    return ", ".join(f"0x{a:02x}" for a in addresses)


def sensor_quantities(sensor: SensorSettings, registry: DriverRegistry) -> set[str] | None:
    """The quantity names a configured sensor can report (None: unknown, its driver or options being invalid)."""
    found = registry.get(sensor.driver)
    if found is None:
        return None
    try:
        names = {q.name for q in found.spec.quantities_of(sensor.options)}
    except ValueError:  # invalid options: reported on their own
        return None
    if found.spec.quantities_for is not None:  # the register map names them all
        return names
    # Drivers that rename inputs (the ADS1115's scaling) declare the new names in options.
    # Options that failed their driver's validation reach here as the file wrote them
    # (``scaling = 3``): what they rename is unknown, and the options problem is reported
    # on its own, so say "unknown" rather than report quantities as missing.
    scaling = sensor.options.get("scaling", ())
    if not isinstance(scaling, list | tuple):
        return None
    for entry in scaling:
        quantity = entry.get("quantity") if isinstance(entry, dict) else None
        if not isinstance(quantity, str):
            return None
        names.add(quantity)
    return names


def check_tests(settings: Settings, where: Where, registry: DriverRegistry) -> list[ConfigProblem]:
    """Cross-checks of ``[[tests]]`` against ``[[sensors]]`` and the drivers."""
    problems: list[ConfigProblem] = []
    seen: set[str] = set()
    for i, test in enumerate(settings.tests):

        def problem(field: str, message: str, i: int = i, name: str = test.name) -> None:
            problems.append(
                ConfigProblem(where(("tests", i)), f'tests[{i}].{field} (test "{name}")', message)
            )

        if test.name in seen:
            problem("name", f"test name {test.name!r} is used twice; names must be unique")
        seen.add(test.name)
        field_of = _limits_field if isinstance(test, RangeTest) else _quantity_field
        _check_sensor(settings, registry, test.sensor, test.quantities(), problem, "sensor", field_of)
        if isinstance(test, AgreementTest):
            other_field = _quantity_field if test.other_quantity is None else _other_quantity_field
            _check_sensor(
                settings, registry, test.other, [test.quantity_of_other], problem, "other", other_field
            )
        if isinstance(test, SelfTest):
            sensor = settings.sensor(test.sensor)
            found = registry.get(sensor.driver) if sensor else None
            if found is not None and not callable(getattr(found.spec.factory, "self_test", None)):
                problem("kind", f"driver {found.spec.name!r} of sensor {test.sensor!r} has no self-test")
    return problems


def _limits_field(quantity: str) -> str:
    return f"limits.{quantity}"


def _quantity_field(quantity: str) -> str:
    return "quantity"


def _other_quantity_field(quantity: str) -> str:
    return "other_quantity"


def _check_sensor(
    settings: Settings,
    registry: DriverRegistry,
    name: str,
    quantities: list[str],
    problem: Callable[[str, str], Any],
    sensor_field: str,
    quantity_field: Callable[[str], str],
) -> None:
    sensor = settings.sensor(name)
    if sensor is None:
        known = ", ".join(s.name for s in settings.sensors) or "none configured"
        problem(sensor_field, f"unknown sensor {name!r} (sensors: {known})")
        return
    if not sensor.enabled:
        problem(sensor_field, f"sensor {name!r} is disabled (enabled = false); enable it or drop the test")
    known_q = sensor_quantities(sensor, registry)
    if known_q is None:
        return  # the unknown driver is reported on its own
    for q in quantities:
        if q not in known_q:
            problem(
                quantity_field(q),
                f"sensor {name!r} does not report {q!r} (it reports: {', '.join(sorted(known_q))})",
            )
