"""A tiny driver spec for tests of the settings, registry and CLI plumbing."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from edge_drivers.api import DriverSpec, Quantity


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
