"""An smbus2-compatible simulated I2C bus.

:class:`SimulatedSMBus` offers the ``SMBus`` methods our drivers use and turns each
into the raw I2C transactions a real bus would carry (a write of bytes, then an
optional read after a repeated start).  Devices implement only those two primitives
(:meth:`SimulatedI2CDevice.write` / :meth:`SimulatedI2CDevice.read`), exactly as a
chip sees the wire, so byte order mistakes (SMBus word ops are LSB first) show up in
tests just as they would on hardware.

Faults, per address (:class:`BusFault`): a NACK (``OSError`` errno 121, what the
Linux i2c driver reports when no device acknowledges), EIO, or EBUSY, for the next
``count`` transactions or with a probability.  An address with no device NACKs.
"""

from __future__ import annotations

import ctypes
import errno
import os
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from smbus2 import i2c_msg

from edge_drivers.clock import SYSTEM_CLOCK, Clock

I2C_M_RD = 0x0001


class SimulatedI2CDevice:
    """A chip on the simulated bus.  Subclasses model it at byte level."""

    def __init__(self, address: int, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.address = address
        self.clock = clock

    def write(self, data: bytes) -> None:
        """The master wrote ``data`` (after the address byte) in one transaction."""
        raise NotImplementedError

    def read(self, length: int) -> bytes:
        """The master reads ``length`` bytes.  Raise ``OSError`` to NACK."""
        raise NotImplementedError

    def quick(self) -> None:
        """An SMBus quick command: the chip only acknowledges its address."""

    def general_call_reset(self) -> None:
        """The I2C general call reset (address 0x00, byte 0x06)."""


class RegisterDevice(SimulatedI2CDevice):
    """A chip with 8-bit register addresses and an auto-incrementing pointer."""

    def __init__(self, address: int, *, clock: Clock = SYSTEM_CLOCK, size: int = 256) -> None:
        super().__init__(address, clock=clock)
        self.registers = bytearray(size)
        self.pointer = 0

    def write(self, data: bytes) -> None:
        if not data:
            return
        self.pointer = data[0]
        for offset, value in enumerate(data[1:]):
            self.write_register(self.pointer + offset, value)

    def read(self, length: int) -> bytes:
        out = bytes(self.read_register((self.pointer + i) % len(self.registers)) for i in range(length))
        self.pointer = (self.pointer + length) % len(self.registers)
        return out

    def read_register(self, register: int) -> int:
        return self.registers[register]

    def write_register(self, register: int, value: int) -> None:
        self.registers[register % len(self.registers)] = value & 0xFF


@dataclass
class BusFault:
    """A fault injected at one address of the simulated bus."""

    errno: int = errno.EREMOTEIO
    count: int | None = 1
    """Transactions still to fail; ``None`` means every one (until cleared)."""
    probability: float = 1.0


class SimulatedSMBus:
    """A simulated I2C bus with the ``SMBus`` API, hosting :class:`SimulatedI2CDevice` s."""

    def __init__(self, bus: int | str = "sim", *, seed: int | None = None) -> None:
        self.bus = bus
        self.devices: dict[int, SimulatedI2CDevice] = {}
        self.faults: dict[int, BusFault] = {}
        self.transactions = 0
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self.fd: int | None = None

    # -- set-up and fault injection ---------------------------------------------------

    def attach(self, device: SimulatedI2CDevice) -> SimulatedI2CDevice:
        with self._lock:
            if device.address in self.devices:
                raise ValueError(f"address 0x{device.address:02x} is already taken on the simulated bus")
            self.devices[device.address] = device
            return device

    def detach(self, address: int) -> None:
        with self._lock:
            self.devices.pop(address, None)

    def inject(self, address: int, fault: BusFault | None = None) -> None:
        """Make transactions to ``address`` fail (default: NACK once)."""
        with self._lock:
            self.faults[address] = fault or BusFault()

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    # -- SMBus API ---------------------------------------------------------------------

    def open(self, bus: int | str) -> None:
        self.bus = bus

    def close(self) -> None:
        pass

    def __enter__(self) -> SimulatedSMBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write_quick(self, i2c_addr: int, force: bool | None = None) -> None:
        self._device(i2c_addr).quick()

    def read_byte(self, i2c_addr: int, force: bool | None = None) -> int:
        return self._transfer(i2c_addr, b"", 1)[0]

    def write_byte(self, i2c_addr: int, value: int, force: bool | None = None) -> None:
        self._transfer(i2c_addr, bytes([value & 0xFF]), 0)

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        return self._transfer(i2c_addr, bytes([register]), 1)[0]

    def write_byte_data(self, i2c_addr: int, register: int, value: int, force: bool | None = None) -> None:
        self._transfer(i2c_addr, bytes([register, value & 0xFF]), 0)

    def read_word_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        data = self._transfer(i2c_addr, bytes([register]), 2)
        return data[0] | (data[1] << 8)  # SMBus words are LSB first

    def write_word_data(self, i2c_addr: int, register: int, value: int, force: bool | None = None) -> None:
        self._transfer(i2c_addr, bytes([register, value & 0xFF, (value >> 8) & 0xFF]), 0)

    def read_i2c_block_data(
        self, i2c_addr: int, register: int, length: int, force: bool | None = None
    ) -> list[int]:
        if not 0 <= length <= 32:
            raise ValueError("I2C block reads are limited to 32 bytes; use i2c_rdwr for more")
        return list(self._transfer(i2c_addr, bytes([register]), length))

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: Sequence[int], force: bool | None = None
    ) -> None:
        if len(data) > 32:
            raise ValueError("I2C block writes are limited to 32 bytes")
        self._transfer(i2c_addr, bytes([register, *data]), 0)

    def i2c_rdwr(self, *i2c_msgs: i2c_msg) -> None:
        with self._lock:
            for msg in i2c_msgs:
                if msg.addr == 0x00 and not msg.flags & I2C_M_RD and bytes(msg) == b"\x06":
                    for device in self.devices.values():
                        device.general_call_reset()
                    continue
                device = self._device(msg.addr)
                if msg.flags & I2C_M_RD:
                    data = device.read(msg.len)
                    ctypes.memmove(msg.buf, data, len(data))
                else:
                    device.write(bytes(msg))

    # -- internals -----------------------------------------------------------------------

    def _transfer(self, address: int, out: bytes, read_length: int) -> bytes:
        with self._lock:
            device = self._device(address)
            if out:
                device.write(out)
            return device.read(read_length) if read_length else b""

    def _device(self, address: int) -> SimulatedI2CDevice:
        """Resolve the device at ``address`` as the address phase of a transaction would."""
        if not 0 <= address <= 0x7F:
            raise ValueError(f"invalid 7-bit I2C address {address!r}")
        self.transactions += 1
        fault = self.faults.get(address)
        if fault is not None and self._rng.random() < fault.probability:
            if fault.count is not None:
                fault.count -= 1
                if fault.count <= 0:
                    del self.faults[address]
            raise OSError(fault.errno, os.strerror(fault.errno))
        device = self.devices.get(address)
        if device is None:
            raise OSError(errno.EREMOTEIO, os.strerror(errno.EREMOTEIO))
        return device
