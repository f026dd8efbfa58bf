"""The driver contract: what a sensor driver module declares and what its class offers.

A driver module exposes one :class:`DriverSpec`, conventionally named ``DRIVER``, and
registers it in the ``edge_agent.drivers`` entry-point group (the built-in drivers do
the same in ``pyproject.toml``)::

    [project.entry-points."edge_agent.drivers"]
    bme280 = "edge_drivers.bme280:DRIVER"

Guarantees a driver gives its callers:

* ``read()`` returns ``{quantity_name: float}`` in the units its spec declares.  A
  quantity the sensor cannot give right now (a BMP280 has no humidity, a GPS without
  a fix has no position) is left out, never returned as a fake number.
* Every failure is a :class:`edge_drivers.errors.DriverError` subclass.
* Drivers are synchronous and blocking (they sleep for conversion times).  They never
  touch an event loop; the daemon runs them in a worker thread.
* The bus or port is injected: an I2C driver class takes ``(bus, address, **options)``
  where ``bus`` is anything with smbus2 ``SMBus`` methods; a serial driver class takes
  ``(port, **options)`` where ``port`` is anything pyserial-compatible.

What a driver may additionally offer (opt-in, like Telegraf's optional interfaces):

* ``self_test()`` on the driver object, returning a :class:`SelfTestResult`.
* ``identify(bus, address)`` on the spec, used by ``edge-agent scan``: a
  non-destructive probe returning a description ("BME280, chip id 0x60") or ``None``.
* ``options``: a pydantic model of the keyword options the class accepts, so the
  agent can validate ``[sensors.options]`` in the config and name a bad field.
* ``simulator``: a factory of a register- or byte-level model used by ``bus = "sim"``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from pydantic import BaseModel
    from smbus2 import i2c_msg

BusKind = Literal["i2c", "serial"]

_QUANTITY_NAME = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


@runtime_checkable
class SMBusLike(Protocol):
    """The subset of smbus2's ``SMBus`` that our I2C drivers use."""

    def write_quick(self, i2c_addr: int, force: bool | None = None) -> None: ...

    def read_byte(self, i2c_addr: int, force: bool | None = None) -> int: ...

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int: ...

    def write_byte_data(
        self, i2c_addr: int, register: int, value: int, force: bool | None = None
    ) -> None: ...

    def read_i2c_block_data(
        self, i2c_addr: int, register: int, length: int, force: bool | None = None
    ) -> list[int]: ...

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: Sequence[int], force: bool | None = None
    ) -> None: ...

    def i2c_rdwr(self, *i2c_msgs: i2c_msg) -> None: ...


@runtime_checkable
class SerialLike(Protocol):
    """The subset of pyserial's ``Serial`` that our serial drivers use."""

    def read(self, size: int = 1) -> bytes: ...

    def readline(self, size: int | None = -1, /) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...


@dataclass(frozen=True)
class Quantity:
    """A physical quantity a driver reports.  The name ends with its unit."""

    name: str
    unit: str
    description: str = ""

    def __post_init__(self) -> None:
        if not _QUANTITY_NAME.match(self.name):
            raise ValueError(f"quantity name {self.name!r} must be snake_case with the unit last")


@dataclass(frozen=True)
class SelfTestResult:
    """Outcome of a driver's own self-test."""

    passed: bool
    detail: str
    measurements: Mapping[str, float] = field(default_factory=dict)


@runtime_checkable
class Sensor(Protocol):
    """What every driver object offers."""

    def read(self) -> Mapping[str, float]: ...


Identify = Callable[["SMBusLike", int], "str | None"]
SimulatorFactory = Callable[..., Any]
"""Builds a simulated device.  I2C: ``factory(address, clock=..., **kw)`` returns a
:class:`edge_drivers.sim.i2c_bus.SimulatedI2CDevice`.  Serial: ``factory(clock=..., **kw)``
returns a :class:`edge_drivers.sim.serial_port.SerialDeviceModel`."""


@dataclass(frozen=True)
class DriverSpec:
    """Everything the agent needs to know about a driver, declared by its module."""

    name: str
    bus: BusKind
    quantities: tuple[Quantity, ...]
    factory: Callable[..., Sensor]
    description: str = ""
    addresses: tuple[int, ...] = ()
    default_baudrate: int | None = None
    identify: Identify | None = None
    options: type[BaseModel] | None = None
    simulator: SimulatorFactory | None = None

    def __post_init__(self) -> None:
        if self.bus == "i2c" and not self.addresses:
            raise ValueError(f"I2C driver {self.name!r} must declare the addresses it can live at")
        if self.bus == "serial" and self.addresses:
            raise ValueError(f"serial driver {self.name!r} cannot declare I2C addresses")

    def quantity(self, name: str) -> Quantity:
        for q in self.quantities:
            if q.name == name:
                return q
        raise KeyError(name)
