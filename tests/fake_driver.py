"""Tiny third-party-style drivers for tests of the settings, registry and CLI plumbing.

Like a plug-in package, they import only the stable API, ``edge_drivers.api``.  Their
options show both kinds a driver may declare: a pydantic model (``FakeOptions``) and a
standard library dataclass (``PlainOptions``, without the ``DriverOptions`` base).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from edge_drivers.api import DriverSpec, OptionError, Quantity


class FakeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gain: float = Field(1.0, gt=0)


class FakeSensor:
    def __init__(self, bus: object, address: int = 0x10, *, clock: object = None, gain: float = 1.0) -> None:
        self.gain = gain

    def read(self) -> dict[str, float]:
        return {"level_m": 1.5 * self.gain}


class FakeSerialSensor:
    def __init__(self, port: object, *, clock: object = None) -> None:
        self.port = port

    def read(self) -> dict[str, float]:
        return {"count_total": 3.0}


@dataclass(frozen=True, kw_only=True)
class Window:
    start_s: float = field(default=0.0, metadata={"description": "Start of the window."})
    length_s: float = field(default=1.0, metadata={"description": "Its length."})

    def __post_init__(self) -> None:
        if self.length_s <= 0:
            raise OptionError("fakeplain", "length_s", "must be positive", value=self.length_s)


@dataclass(frozen=True, kw_only=True)
class PlainOptions:
    mode: str = field(default="fast", metadata={"description": "fast or slow."})
    windows: tuple[Window, ...] = field(default=(), metadata={"description": "Averaging windows."})

    def __post_init__(self) -> None:
        if self.mode not in ("fast", "slow"):
            raise OptionError("fakeplain", "mode", "must be 'fast' or 'slow'", value=self.mode)


class PlainSensor:
    def __init__(
        self,
        bus: object,
        address: int = 0x30,
        *,
        clock: object = None,
        mode: str = "fast",
        windows: object = (),
    ) -> None:
        self.mode, self.windows = mode, windows

    def read(self) -> dict[str, float]:
        return {"level_m": 2.0}


FAKE_I2C = DriverSpec(
    name="fakei2c",
    bus="i2c",
    quantities=(Quantity("level_m", "m"),),
    factory=FakeSensor,
    addresses=(0x10, 0x11),
    options=FakeOptions,
)
FAKE_SERIAL = DriverSpec(
    name="fakeserial", bus="serial", quantities=(Quantity("count_total", "1"),), factory=FakeSerialSensor
)
FAKE_PLAIN = DriverSpec(
    name="fakeplain",
    bus="i2c",
    quantities=(Quantity("level_m", "m"),),
    factory=PlainSensor,
    addresses=(0x30,),
    options=PlainOptions,
)
# A third party's driver that claims a built-in driver's name: the built-in keeps it.
FAKE_SHT3X = DriverSpec(
    name="sht3x", bus="i2c", quantities=(Quantity("level_m", "m"),), factory=FakeSensor, addresses=(0x44,)
)
# A driver whose first address is the fake I2C driver's: the demo board has room for one.
FAKE_CLASH = DriverSpec(
    name="fakeclash", bus="i2c", quantities=(Quantity("level_m", "m"),), factory=FakeSensor, addresses=(0x10,)
)
