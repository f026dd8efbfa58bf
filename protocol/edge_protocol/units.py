"""What a reading's quantity name says about its unit.

Quantity names carry their unit as a suffix (``temperature_c``, ``pressure_pa``,
``pm2_5_ugm3``; docs/PROTOCOL.md, "data by kind").  Every subscriber that shows a value
needs the unit back: the dashboard, the latest-value topic, Home Assistant's discovery.
Home Assistant's ``device_class`` is given where its documented classes fit the unit.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Unit:
    suffix: str
    symbol: str
    """As Home Assistant's sensor units spell it (``°C``, ``Pa``, ``%``, ``µg/m³``)."""
    device_class: str | None = None
    """Home Assistant's sensor device class, when the quantity's name decides it."""
    state_class: str = "measurement"
    """Home Assistant's state class: a meter's energy register only ever grows."""


# Each suffix starts with "_", so none is the end of another: their order does not matter.
_UNITS = (
    Unit("_ugm3", "µg/m³"),
    Unit("_pct", "%"),
    Unit("_mps", "m/s", "speed"),
    Unit("_deg", "°"),
    Unit("_pa", "Pa", "pressure"),
    Unit("_hpa", "hPa", "pressure"),
    Unit("_kpa", "kPa", "pressure"),
    Unit("_c", "°C", "temperature"),
    Unit("_v", "V", "voltage"),
    Unit("_mv", "mV", "voltage"),
    Unit("_a", "A", "current"),
    Unit("_ma", "mA", "current"),
    Unit("_w", "W", "power"),
    Unit("_kw", "kW", "power"),
    Unit("_va", "VA", "apparent_power"),
    Unit("_var", "var", "reactive_power"),
    Unit("_wh", "Wh", "energy", "total_increasing"),
    Unit("_kwh", "kWh", "energy", "total_increasing"),
    Unit("_hz", "Hz", "frequency"),
    Unit("_m", "m", "distance"),
    Unit("_s", "s", "duration"),
)
_CLASS_BY_NAME = (
    # The quantity, not only the unit, decides these classes.
    ("relative_humidity", "humidity"),
    ("pm2_5", "pm25"),
    ("pm10", "pm10"),
    ("pm1_0", "pm1"),
)


def unit_of(quantity: str) -> Unit | None:
    """The unit of ``quantity`` from its suffix; None when the name carries none (a count)."""
    for unit in _UNITS:
        if quantity.endswith(unit.suffix):
            for prefix, device_class in _CLASS_BY_NAME:
                if quantity.startswith(prefix):
                    return Unit(unit.suffix, unit.symbol, device_class, unit.state_class)
            return unit
    return None


def symbol_of(quantity: str) -> str:
    """The unit's symbol, or ``""``."""
    unit = unit_of(quantity)
    return unit.symbol if unit is not None else ""
