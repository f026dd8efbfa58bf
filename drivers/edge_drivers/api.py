"""The stable driver API: everything a sensor driver package imports from edge-drivers.

A driver module exposes one :class:`DriverSpec`, conventionally named ``DRIVER``, and
registers it in the ``edge_agent.drivers`` entry-point group under the spec's name (the
built-in drivers do the same in ``drivers/pyproject.toml``)::

    [project.entry-points."edge_agent.drivers"]
    mylux = "mylux_driver:DRIVER"

What is stable: the names in ``__all__`` below, with the fields, signatures and
meanings documented here.  They change only in a backwards-compatible way (a new
:class:`DriverSpec` field always has a default).  Other modules of ``edge_drivers``
(``clock``, ``errors``, the built-in drivers) can be imported, but their layout is not a
promise: import from here.  A simulator plug-in imports ``edge_drivers.sim.api``.

What a driver gives its callers:

* ``read()`` returns ``{quantity_name: float}`` in the units its spec declares.  A
  quantity the sensor cannot give right now (a BMP280 has no humidity, a GPS without
  a fix has no position) is left out, never returned as a fake number.
* Every failure of the sensor or its bus is a :class:`DriverError` subclass, with the
  foreign exception chained (``raise BusError.from_os_error(what, exc) from exc``).
* A bad option value — of the wrong type (``channels=5``, ``None``, ``"4"`` where a
  number goes), out of range, or too large to compute with — is an :class:`OptionError`
  (a ``ValueError``) naming the option, raised before the driver touches the bus or
  converts the value, whether the class is called by the agent or by a script.  An
  unknown keyword given to the driver class is Python's own ``TypeError`` ("unexpected
  keyword argument"): the classes keep explicit keyword signatures for IDEs and type
  checkers.  The options class (on :class:`DriverOptions`) turns an unknown keyword into
  an :class:`OptionError` with the closest name; the agent's config check reports that.
* Drivers are synchronous and blocking (they sleep for conversion times through the
  injected ``clock``).  They never touch an event loop.
* The bus or port is injected: an I2C driver class takes ``(bus, address, *, clock,
  **options)`` where ``bus`` is anything :class:`SMBusLike`; a serial driver class takes
  ``(port, *, clock, **options)`` where ``port`` is anything :class:`SerialLike`.

What a driver may additionally offer (opt-in):

* ``self_test()`` on the driver object, returning a :class:`SelfTestResult`.
* ``identify(bus, address)`` on the spec, used by ``edge-agent scan``: a
  non-destructive probe returning a description ("BME280, chip id 0x60") or ``None``;
  it never raises.
* ``options``: the class of the keyword options the driver class accepts, so the agent
  can check ``[sensors.options]`` in the config and name a bad field.  Either a standard
  library dataclass (``@dataclass(frozen=True, kw_only=True)``, a description per field
  in ``field(metadata={"description": ...})``, rules checked in ``__post_init__``
  raising :class:`OptionError`), which needs nothing beyond the standard library; or a
  pydantic model (give it ``model_config = ConfigDict(extra="forbid")``: the agent
  applies the model's own config).
* A simulator, registered separately in the ``edge_agent.simulators`` group: see
  ``edge_drivers.sim.api``.

What the agent (``edge-agent``) guarantees a registered driver:

* Entry points are loaded once per process, each on its own: one that fails to import,
  is not a :class:`DriverSpec` or is named differently from its spec is listed by
  ``edge-agent drivers`` with the reason, and the others work.
* A driver name is one driver's, whatever the order of ``sys.path``: when two packages
  register the same name, the built-in ``edge-drivers`` keeps it, and between other
  packages the first by distribution name wins; the other is listed as not used, with
  both packages named.  Choose a name of your own (``acme_bh1750`` rather than a bare
  chip name another package may also use).
* The config's options table is validated against ``options`` before the class is
  called: unknown keys are errors (also inside nested dataclasses), an
  :class:`OptionError` is reported at its path (``sensors[2].options.scaling[0].quantity``),
  and the class receives the validated values as plain keyword arguments (nested
  dataclasses and models as dicts).  A spec without ``options`` is given none.
* I2C: ``factory(bus, address, clock=..., **options)`` with ``address`` one of
  ``addresses``.  The bus is shared by every sensor on it; each ``SMBusLike`` call holds
  the bus lock, so one call is atomic but a sequence of calls may interleave with other
  drivers' (use ``i2c_rdwr`` when a transaction must not be split).  A sensor that keeps
  failing is rebuilt: a new object is constructed on the same bus and the old one
  dropped without notice, so the constructor must put the chip in a known state.
* Modbus: ``factory(links, port, baudrate, clock=..., **options)``: ``links`` is the
  process's one :class:`ModbusLinks` (each line opened once, shared by its slaves),
  ``port`` a serial device or ``tcp://host:port``, ``baudrate`` the config's or None.
* Serial: ``factory(port, clock=..., **options)``; the port is the sensor's own, opened
  8N1 at the config's ``baudrate`` (else ``default_baudrate``, else 9600) with a 1 s read
  timeout.
* One driver object per configured sensor.  ``read()`` and ``self_test()`` run on that
  sensor's own thread, one call at a time, never concurrently.  A call running longer
  than the sensor's ``timeout`` is abandoned (its thread is left to finish; the sensor
  counts as busy meanwhile).
* A :class:`DriverError` from the constructor is retried with backoff; from ``read()``
  it counts against the sensor's health and the next interval reads again.  Any other
  exception is treated as a driver bug: logged with its traceback and counted, and the
  daemon goes on.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, Self, runtime_checkable

from edge_drivers.clock import SYSTEM_CLOCK, Clock, ManualClock
from edge_drivers.errors import (
    BusError,
    ChecksumError,
    ChipNotFoundError,
    ChipResetError,
    DataIntegrityError,
    DriverError,
    MalformedDataError,
    NotReadyError,
    OptionError,
    SensorTimeoutError,
    WrongChipError,
)
from edge_drivers.modbus.link import ModbusLinks

if TYPE_CHECKING:
    from smbus2 import i2c_msg

__all__ = [
    "SYSTEM_CLOCK",
    "BusError",
    "BusKind",
    "ChecksumError",
    "ChipNotFoundError",
    "ChipResetError",
    "Clock",
    "DataIntegrityError",
    "DerivesQuantities",
    "DriverError",
    "DriverOptions",
    "DriverSpec",
    "Identify",
    "MalformedDataError",
    "ManualClock",
    "ModbusLinks",
    "NotReadyError",
    "OptionError",
    "Quantity",
    "SMBusLike",
    "SelfTestResult",
    "Sensor",
    "SensorTimeoutError",
    "SerialLike",
    "WrongChipError",
    "is_finite_number",
    "is_plain_int",
]

BusKind = Literal["i2c", "serial", "modbus"]

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
    resolution: float | None = None
    """The smallest step the sensor resolves, in ``unit`` (datasheet); published values are
    rounded to its decimal place, so a correction adds no float noise (None: not stated)."""

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


@runtime_checkable
class DerivesQuantities(Protocol):
    """A driver some of whose quantities are computed from others (the ADS1115's scaled inputs).

    The agent corrects (calibrates) the inputs first and asks the driver to compute the
    derived quantities again from the corrected inputs, so that they follow.
    """

    def derive(self, values: Mapping[str, float]) -> dict[str, float | None]:
        """Each derived quantity whose input is in ``values``, computed from it; None when
        the input is outside the range the quantity is defined on (the quantity is left out).
        Pure: no bus access, no logging."""
        ...


Identify = Callable[["SMBusLike", int], "str | None"]


def is_plain_int(value: object) -> bool:
    """An ``int`` and not a ``bool`` (``True`` is an int to Python, never a channel or a rate)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite_number(value: object) -> bool:
    """An int or float a driver can compute with: not a bool, NaN or infinite, nor an int
    beyond a float's range (``math.isfinite(10**400)`` raises ``OverflowError``).  For an
    options class's ``__post_init__``, before any arithmetic on the value."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


class DriverOptions:
    """An optional base of a driver's options dataclass: an unknown keyword is an :class:`OptionError`.

    A dataclass's own ``__init__`` raises ``TypeError`` for a keyword it does not know;
    with this base, ``Options(gian=2.5)`` raises ``OptionError`` naming the key and the
    closest option, like every other option mistake.  Set ``driver_name``::

        @dataclass(frozen=True, kw_only=True)
        class Options(DriverOptions):
            driver_name = "mylux"
            gain: float = field(default=1.0, metadata={"description": "…"})
    """

    driver_name: ClassVar[str] = "driver"

    def __new__(cls, *args: object, **kwargs: object) -> Self:
        # __new__ sees the keywords before the generated __init__ does.  pydantic and
        # copy/pickle call it with none, so it never stands in their way.
        if kwargs:
            known = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
            for key in kwargs:
                if key not in known:
                    close = difflib.get_close_matches(key, sorted(known), n=1)
                    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(known))}"
                    raise OptionError(cls.driver_name, key, f"unknown option ({hint})")
        return super().__new__(cls)


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
    options: type[Any] | None = None
    """A standard library dataclass or a pydantic model class (see the module docstring)."""
    quantities_for: Callable[..., tuple[Quantity, ...]] | None = None
    """For a driver whose quantities come from its options (a Modbus register map): called
    with a sensor's options as keywords, returns what that sensor reports (``quantities``
    then lists the fixed ones, if any).  Raises :class:`OptionError` for invalid options."""

    def __post_init__(self) -> None:
        if self.bus == "i2c" and not self.addresses:
            raise ValueError(f"I2C driver {self.name!r} must declare the addresses it can live at")
        if self.bus != "i2c" and self.addresses:
            raise ValueError(f"{self.bus} driver {self.name!r} cannot declare I2C addresses")
        if self.options is not None and not _is_options_class(self.options):
            raise TypeError(
                f"driver {self.name!r}: options must be a dataclass or a pydantic model class, "
                f"not {self.options!r}"
            )

    def quantities_of(self, options: Mapping[str, Any]) -> tuple[Quantity, ...]:
        """What a sensor configured with ``options`` reports: its register map's quantities
        (``quantities_for``) or the declared ones.  Raises :class:`ValueError` (an
        :class:`OptionError` among them) for options the driver refuses."""
        if self.quantities_for is None:
            return self.quantities
        try:
            return self.quantities_for(**options)
        except TypeError as exc:  # an option the function does not take
            raise ValueError(f"driver {self.name!r}: {exc}") from exc

    def quantity(self, name: str) -> Quantity:
        for q in self.quantities:
            if q.name == name:
                return q
        raise KeyError(name)


def _is_options_class(options: object) -> bool:
    # pydantic is the agent's library, not ours: a model is recognised by its API.
    return isinstance(options, type) and (
        dataclasses.is_dataclass(options) or callable(getattr(options, "model_validate", None))
    )
