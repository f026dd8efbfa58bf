"""Opens the buses and ports the config names, real or simulated, and builds drivers on them.

One ``SMBus`` per bus number, shared by every sensor on it and guarded by a lock
(smbus2 objects are not thread-safe, and the daemon reads sensors from worker
threads).  ``bus = "sim"`` is a single :class:`~edge_drivers.sim.api.SimulatedSMBus` on
which each configured sensor gets its driver's simulator at its address; ``port =
"sim://"`` is a :class:`~edge_drivers.sim.api.SimulatedSerial` wired to the driver's serial
simulator (``sim://NAME`` picks another driver's).  Simulators come from the registry's
``edge_agent.simulators`` entry points, not from the drivers.  Like every agent module,
this one uses the drivers library through its two stable modules only,
``edge_drivers.api`` and ``edge_drivers.sim.api``.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from smbus2 import i2c_msg

from edge_agent.errors import HardwareOpenError
from edge_agent.sampling.registry import DriverRegistry
from edge_agent.settings import SIM, SIM_PORT_SCHEME, SensorSettings
from edge_drivers.api import (
    SYSTEM_CLOCK,
    Clock,
    DriverSpec,
    ModbusLinks,
    Quantity,
    Sensor,
    SerialLike,
    SMBusLike,
)
from edge_drivers.sim.api import (
    Environment,
    SerialDeviceModel,
    SimulatedI2CDevice,
    SimulatedSerial,
    SimulatedSMBus,
)

SERIAL_TIMEOUT_S = 1.0


class LockedBus:
    """An ``SMBus`` shared between threads: one transaction at a time."""

    def __init__(self, bus: SMBusLike) -> None:
        self.inner = bus
        self._lock = threading.Lock()

    def write_quick(self, i2c_addr: int, force: bool | None = None) -> None:
        with self._lock:
            self.inner.write_quick(i2c_addr, force)

    def read_byte(self, i2c_addr: int, force: bool | None = None) -> int:
        with self._lock:
            return self.inner.read_byte(i2c_addr, force)

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        with self._lock:
            return self.inner.read_byte_data(i2c_addr, register, force)

    def write_byte_data(self, i2c_addr: int, register: int, value: int, force: bool | None = None) -> None:
        with self._lock:
            self.inner.write_byte_data(i2c_addr, register, value, force)

    def read_i2c_block_data(
        self, i2c_addr: int, register: int, length: int, force: bool | None = None
    ) -> list[int]:
        with self._lock:
            return self.inner.read_i2c_block_data(i2c_addr, register, length, force)

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: Sequence[int], force: bool | None = None
    ) -> None:
        with self._lock:
            self.inner.write_i2c_block_data(i2c_addr, register, data, force)

    def i2c_rdwr(self, *i2c_msgs: i2c_msg) -> None:
        with self._lock:
            self.inner.i2c_rdwr(*i2c_msgs)


def open_i2c_bus(number: int) -> SMBusLike:
    """Open ``/dev/i2c-N`` with smbus2, explaining the usual reasons it fails."""
    from smbus2 import SMBus

    path = f"/dev/i2c-{number}"
    try:
        bus: SMBusLike = SMBus(number)
    except FileNotFoundError as exc:
        raise HardwareOpenError(
            f"{path} does not exist: enable I2C (raspi-config → Interface Options → I2C, "
            "or dtparam=i2c_arm=on) and check the bus number",
            errno=exc.errno,
        ) from exc
    except PermissionError as exc:
        raise HardwareOpenError(
            f"{path}: permission denied; add the user to the 'i2c' group", errno=exc.errno
        ) from exc
    except OSError as exc:
        raise HardwareOpenError(f"{path}: {exc.strerror or exc}", errno=exc.errno) from exc
    return bus


def open_serial_port(port: str, baudrate: int) -> SerialLike:
    """Open a real serial port 8N1 with a read timeout (pyserial)."""
    import serial

    try:
        opened: SerialLike = serial.Serial(port, baudrate=baudrate, timeout=SERIAL_TIMEOUT_S)
    except serial.SerialException as exc:
        code = getattr(exc, "errno", None)
        hint = ""
        if code == errno.EACCES:
            hint = "; add the user to the 'dialout' group"
        elif code == errno.ENOENT:
            hint = "; check the device name (on a Pi the UART is /dev/serial0 once enabled in raspi-config)"
        raise HardwareOpenError(f"cannot open serial port {port}: {exc}{hint}", errno=code) from exc
    return opened


@dataclass(frozen=True)
class LeftOff:
    """A simulator that is not on a simulated bus, and why."""

    driver: str
    address: int
    reason: str

    def __str__(self) -> str:
        return f"{self.driver} at 0x{self.address:02x}: {self.reason}"


@dataclass
class DemoBoard:
    """The simulated bus of ``edge-agent scan --bus sim``, and what could not be put on it."""

    bus: SimulatedSMBus
    left_off: list[LeftOff] = field(default_factory=list)


def simulated_demo_board(registry: DriverRegistry, *, clock: Clock = SYSTEM_CLOCK) -> DemoBoard:
    """A simulated bus with every I2C driver's simulator at its first address.

    A simulator that cannot be used (its plug-in failed to load or to build its device, or
    another driver's simulator already sits at that address) is left off: the demo shows
    the others rather than nothing, and ``left_off`` says which ones and why, so a missing
    chip is never a silent surprise.  A driver that ships no simulator is not listed.
    """
    board = DemoBoard(SimulatedSMBus(SIM))
    placed: dict[int, str] = {}
    for found in registry.i2c_drivers():
        name = found.spec.name
        address = found.spec.addresses[0]
        if registry.simulator(name) is None:
            problem = registry.simulator_problem(name)
            if problem is not None:
                board.left_off.append(LeftOff(name, address, f"its simulator cannot be used ({problem})"))
            continue
        if address in placed:
            board.left_off.append(
                LeftOff(name, address, f"the address is taken by {placed[address]}'s simulator")
            )
            continue
        try:
            board.bus.attach(build_i2c_simulator(registry, name, address, clock=clock))
        except HardwareOpenError as exc:
            board.left_off.append(LeftOff(name, address, str(exc)))
            continue
        placed[address] = name
    return board


def build_i2c_simulator(
    registry: DriverRegistry, driver: str, address: int, *, clock: Clock, seed: int | None = None
) -> SimulatedI2CDevice:
    """``driver``'s simulated chip at ``address``; a plug-in's failure becomes a HardwareOpenError."""
    factory = registry.simulator(driver)
    if factory is None:
        raise HardwareOpenError(f"driver {driver!r} {registry.no_simulator(driver)}; use a real bus number")
    device = _call_simulator(driver, lambda: factory(address, clock=clock, seed=seed))
    if not isinstance(device, SimulatedI2CDevice):
        raise HardwareOpenError(
            f"the simulator of {driver!r} made a {type(device).__name__}, not a SimulatedI2CDevice"
        )
    if device.address != address:
        # Attached anyway it would sit at an address nobody configured, or collide with another.
        raise HardwareOpenError(
            f"the simulator of {driver!r} made a device at 0x{device.address:02x} when asked for 0x{address:02x}"
        )
    return device


def build_serial_simulator(
    registry: DriverRegistry, driver: str, *, clock: Clock, seed: int | None = None
) -> SerialDeviceModel:
    """``driver``'s simulated serial device; a plug-in's failure becomes a HardwareOpenError."""
    factory = registry.simulator(driver)
    if factory is None:
        raise HardwareOpenError(f"no serial simulator named {driver!r}")
    model = _call_simulator(driver, lambda: factory(clock=clock, seed=seed))
    if not isinstance(model, SerialDeviceModel):
        raise HardwareOpenError(
            f"the simulator of {driver!r} made a {type(model).__name__}, not a SerialDeviceModel"
        )
    return model


def _call_simulator(driver: str, build: Callable[[], object]) -> object:
    try:
        return build()
    except Exception as exc:  # third-party code: a broken simulator fails its sensor, not the agent
        raise HardwareOpenError(f"the simulator of {driver!r} failed: {type(exc).__name__}: {exc}") from exc


class Hardware:
    """The buses and ports of one process, opened on first use and closed together."""

    def __init__(
        self, registry: DriverRegistry, *, clock: Clock = SYSTEM_CLOCK, seed: int | None = None
    ) -> None:
        self.registry = registry
        self.clock = clock
        self.seed = seed
        self.sim_bus = SimulatedSMBus(SIM, seed=seed)
        self.environment = Environment()
        """The simulated sensors share one room: their temperatures (etc.) agree."""
        self._i2c: dict[int | str, LockedBus] = {}
        self._ports: dict[str, SerialLike] = {}
        self._closables: list[Any] = []
        self.modbus_links = ModbusLinks(clock=clock)
        """Each Modbus line opened once and shared by the slaves on it."""
        self._modbus_sims: dict[str, Any] = {}

    def i2c(self, bus: int | str) -> LockedBus:
        if bus not in self._i2c:
            raw: SMBusLike = self.sim_bus if bus == SIM else open_i2c_bus(int(bus))
            self._closables.append(raw)
            self._i2c[bus] = LockedBus(raw)
        return self._i2c[bus]

    def simulated_device(self, spec: DriverSpec, address: int) -> SimulatedI2CDevice:
        """The simulator at ``address`` on the sim bus, attached on first use."""
        device = self.sim_bus.devices.get(address)
        if device is None:
            built = build_i2c_simulator(self.registry, spec.name, address, clock=self.clock, seed=self.seed)
            device = self.sim_bus.attach(built)
            self.environment.adopt(getattr(device, "signals", {}))
        return device

    def serial(self, spec: DriverSpec, port: str, baudrate: int) -> SerialLike:
        if port.startswith(SIM_PORT_SCHEME):
            target = port.removeprefix(SIM_PORT_SCHEME) or spec.name
            found = self.registry.get(target)
            if found is None or found.spec.bus != "serial":
                raise HardwareOpenError(f"{port}: no serial simulator named {target!r}")
            try:
                model = build_serial_simulator(self.registry, target, clock=self.clock, seed=self.seed)
            except HardwareOpenError as exc:
                raise HardwareOpenError(f"{port}: {exc}") from exc
            self.environment.adopt(getattr(model, "signals", {}))
            opened: SerialLike = SimulatedSerial(
                model,
                port=port,
                baudrate=baudrate,
                timeout=SERIAL_TIMEOUT_S,
                clock=self.clock,
                seed=self.seed,
            )
        else:
            # One open per device: a sensor restarted by a reload gets the port anew.
            self._close_port(port)
            opened = open_serial_port(port, baudrate)
            self._ports[port] = opened
        self._closables.append(opened)
        return opened

    def _close_port(self, port: str) -> None:
        previous = self._ports.pop(port, None)
        if previous is not None:
            close = getattr(previous, "close", None)
            if close is not None:
                close()
            self._closables.remove(previous)

    def modbus_port(self, driver: str, port: str) -> str:
        """The line to open for ``port``: itself, or for ``sim://…`` the port of a simulated line
        (one per distinct name, started on first use, shared by the sensors that name it)."""
        if not port.startswith(SIM_PORT_SCHEME):
            return port
        if port not in self._modbus_sims:
            factory = self.registry.simulator(driver)
            if factory is None:
                raise HardwareOpenError(f"{port}: driver {driver!r} {self.registry.no_simulator(driver)}")
            line = _call_simulator(driver, lambda: factory(clock=self.clock, seed=self.seed))
            if not isinstance(getattr(line, "port", None), str):
                raise HardwareOpenError(
                    f"the simulator of {driver!r} made a {type(line).__name__}, not a line"
                )
            self._modbus_sims[port] = line
            self._closables.append(line)
        return str(self._modbus_sims[port].port)

    def open_sensor(self, sensor: SensorSettings) -> Sensor:
        """Build the configured driver on its bus or port (the chip is probed now)."""
        found = self.registry.get(sensor.driver)
        if found is None:
            raise HardwareOpenError(f"sensor {sensor.name!r}: driver {sensor.driver!r} is not installed")
        spec = found.spec
        if spec.bus == "i2c":
            assert sensor.bus is not None and sensor.address is not None  # checked by load_settings
            if sensor.bus == SIM:
                self.simulated_device(spec, sensor.address)
            return spec.factory(self.i2c(sensor.bus), sensor.address, clock=self.clock, **sensor.options)
        assert sensor.port is not None
        if spec.bus == "modbus":
            line = self.modbus_port(spec.name, sensor.port)
            return spec.factory(self.modbus_links, line, sensor.baudrate, clock=self.clock, **sensor.options)
        baudrate = sensor.baudrate or spec.default_baudrate or 9600
        return spec.factory(self.serial(spec, sensor.port, baudrate), clock=self.clock, **sensor.options)

    def quantities(self, sensor: SensorSettings) -> tuple[Quantity, ...]:
        """The quantities ``sensor``'s driver declares (none when it is not installed)."""
        found = self.registry.get(sensor.driver)
        if found is None:
            return ()
        try:
            return found.spec.quantities_of(sensor.options)
        except ValueError:  # invalid options: reported when the sensor opens
            return found.spec.quantities

    def close(self) -> None:
        self.modbus_links.close()
        for item in reversed(self._closables):
            close = getattr(item, "close", None)
            if close is not None:
                close()
        self._closables.clear()
        self._modbus_sims.clear()
        self._i2c.clear()
        self._ports.clear()

    def __enter__(self) -> Hardware:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
