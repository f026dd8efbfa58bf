"""Simulators for the fake drivers, as a plug-in ships them: importing only ``edge_drivers.sim.api``."""

from __future__ import annotations

from edge_drivers.sim.api import SYSTEM_CLOCK, Clock, RegisterDevice, SerialDeviceModel


class SimulatedFake(RegisterDevice):
    """The fake I2C driver's chip: a register file."""

    def __init__(self, address: int = 0x10, *, clock: Clock = SYSTEM_CLOCK, seed: int | None = None) -> None:
        super().__init__(address, clock=clock)


class SilentSerial(SerialDeviceModel):
    """A serial device that never sends anything."""

    def __init__(self, *, clock: Clock = SYSTEM_CLOCK, seed: int | None = None) -> None:
        super().__init__(clock=clock)

    def poll(self, now: float) -> bytes:
        return b""

    def next_output_at(self, now: float) -> float | None:
        return None


def make_fake(address: int, *, clock: Clock, seed: int | None) -> SimulatedFake:
    """A factory function rather than a class: what it returns is checked when it is called."""
    return SimulatedFake(address, clock=clock, seed=seed)


def make_wrong(address: int, *, clock: Clock, seed: int | None) -> SilentSerial:
    """A factory that returns the wrong kind of device for an I2C driver."""
    return SilentSerial(clock=clock, seed=seed)


NOT_A_FACTORY = 42


def make_elsewhere(address: int, *, clock: Clock, seed: int | None) -> SimulatedFake:
    """A factory that ignores the address it is given."""
    return SimulatedFake(address + 1, clock=clock, seed=seed)


def make_failing(address: int, *, clock: Clock, seed: int | None) -> SimulatedFake:
    """A factory that fails when it is called."""
    raise RuntimeError("no room in the simulated cabinet")
