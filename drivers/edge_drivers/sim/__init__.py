"""Simulated hardware: an smbus2-compatible I2C bus and a pyserial-compatible port.

The simulators model the parts at register or byte level (calibration NVM, status
bits, conversion times, CRCs, frames), so the real driver code runs unchanged in
tests and in demo mode (``bus = "sim"`` / ``port = "sim://…"`` in the config).
Faults can be injected at every layer: the bus (NACK, EIO), the device (stuck
values, corrupt CRC, dead heater) and the serial line (garbage, corrupt frames,
silence).

Each chip's simulator (``edge_drivers.sim.bme280`` …) is registered beside its driver in
the ``edge_agent.simulators`` entry-point group; a driver never imports it.
``edge_drivers.sim.api`` is what a third-party simulator imports.
"""

from edge_drivers.sim.environment import Environment
from edge_drivers.sim.i2c_bus import BusFault, SimulatedI2CDevice, SimulatedSMBus
from edge_drivers.sim.serial_port import SerialDeviceModel, SimulatedSerial
from edge_drivers.sim.signals import Signal, SignalFaults

__all__ = [
    "BusFault",
    "Environment",
    "SerialDeviceModel",
    "Signal",
    "SignalFaults",
    "SimulatedI2CDevice",
    "SimulatedSMBus",
    "SimulatedSerial",
]
