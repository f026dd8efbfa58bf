"""The stable simulator API: what a package imports to ship a simulator for its driver.

A simulator lets the driver run without hardware (``bus = "sim"`` / ``port = "sim://"``
in the agent's config, ``edge-agent scan --bus sim``) and in the driver's own tests.  It
is registered beside the driver, never imported by it, in the ``edge_agent.simulators``
entry-point group under the driver's name; the value is a factory, usually the
simulator class itself::

    [project.entry-points."edge_agent.drivers"]
    mylux = "mylux_driver:DRIVER"

    [project.entry-points."edge_agent.simulators"]
    mylux = "mylux_driver.sim:SimulatedMyLux"

The simulator module may import its driver's pure functions (to encode what the driver
decodes); the driver module never imports its simulator, so a driver works, and is
importable, without any of this.

The factory, for an I2C driver (:class:`I2CSimulatorFactory`)::

    factory(address, clock=clock, seed=seed) -> SimulatedI2CDevice

which models the chip at the bytes of an I2C transaction (:class:`SimulatedI2CDevice`:
``write(data)`` / ``read(length)``, raise ``OSError`` to NACK; or
:class:`RegisterDevice` for a chip with 8-bit registers and an auto-incrementing
pointer).  For a serial driver (:class:`SerialSimulatorFactory`)::

    factory(clock=clock, seed=seed) -> SerialDeviceModel

which says what bytes the device sends and when (:class:`SerialDeviceModel`: ``poll``,
``next_output_at``, ``receive``; :class:`LineTransmitter` paces them at the baud rate).
Time comes only from ``clock``, randomness only from ``seed`` (``None``: unseeded), so
a test with a :class:`~edge_drivers.api.ManualClock` and a seed is reproducible.  A
simulator with a ``signals`` mapping (quantity name -> :class:`Signal`) takes part in
the agent's simulated room: sensors measuring the same quantity follow one truth.

What the agent guarantees a registered simulator: its entry point is loaded once per
process, on its own; one that fails to import, is not callable, names no installed
driver, or is a class of the wrong kind for its driver's bus is listed by ``edge-agent
drivers`` with the reason and never stops the agent.  When several simulators name one
driver, whatever the order of ``sys.path``, the one from the package that provides the
driver in use wins, then the built-in ``edge-drivers``, then the first by distribution
name; a simulator registered beside a driver that lost its name to another package's is
not used either.  The others are listed as not used, with both packages named.  It is
called once per simulated sensor (an I2C simulator once per address; the device it
returns must be at that address).  ``edge-agent scan --bus sim`` says which simulators it
left off its board and why.

What a host needs to run simulators (the agent's ``bus = "sim"``, a script, a test) is
here too, so it never reaches into the modules below:

* :class:`SimulatedSMBus` — an smbus2-compatible bus: ``SimulatedSMBus(bus="sim", *,
  seed=None)``, ``attach(device)`` (returns it; ``ValueError`` if its address is taken),
  ``detach(address)``, ``devices`` (address -> device), ``close()`` and the ``SMBus`` calls
  of :class:`~edge_drivers.api.SMBusLike`; an address with no device NACKs (``OSError``).
* :class:`SimulatedSerial` — a pyserial-compatible port on a :class:`SerialDeviceModel`:
  ``SimulatedSerial(model, *, port="sim://", baudrate=9600, timeout=1.0, clock=SYSTEM_CLOCK,
  seed=None)``, ``read``, ``readline``, ``write``, ``close()``
  (:class:`~edge_drivers.api.SerialLike`).
* :class:`Environment` — one simulated room: ``adopt(signals)`` makes every later
  simulator's signal of a quantity follow the first one's truth.

What is stable: the names in ``__all__``, with the signatures and meanings documented
here.  The fault injection of the bus and port (``SimulatedSMBus.inject`` with a
``BusFault``, ``SimulatedSerial.set_silent`` …, in ``edge_drivers.sim``) is the test
bench of this repository's own tests and may change.
"""

from __future__ import annotations

from typing import Protocol

from edge_drivers.clock import SYSTEM_CLOCK, Clock
from edge_drivers.sim.environment import Environment
from edge_drivers.sim.i2c_bus import RegisterDevice, SimulatedI2CDevice, SimulatedSMBus
from edge_drivers.sim.serial_port import LineTransmitter, SerialDeviceModel, SimulatedSerial
from edge_drivers.sim.signals import Signal, SignalFaults

__all__ = [
    "SYSTEM_CLOCK",
    "Clock",
    "Environment",
    "I2CSimulatorFactory",
    "LineTransmitter",
    "RegisterDevice",
    "SerialDeviceModel",
    "SerialSimulatorFactory",
    "Signal",
    "SignalFaults",
    "SimulatedI2CDevice",
    "SimulatedSMBus",
    "SimulatedSerial",
    "SimulatorFactory",
]


class I2CSimulatorFactory(Protocol):
    """Builds the simulated chip of an I2C driver at ``address``."""

    def __call__(self, address: int, /, *, clock: Clock, seed: int | None) -> SimulatedI2CDevice: ...


class SerialSimulatorFactory(Protocol):
    """Builds the simulated device at the other end of a serial driver's port."""

    def __call__(self, *, clock: Clock, seed: int | None) -> SerialDeviceModel: ...


SimulatorFactory = I2CSimulatorFactory | SerialSimulatorFactory
