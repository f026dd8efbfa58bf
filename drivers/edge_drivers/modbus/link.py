"""One Modbus line (an RS-485 port or a TCP connection) shared by every slave on it.

Built on pymodbus's synchronous clients, which do the framing and the CRC.  A
:class:`ModbusLink` adds what a shared bus needs: one transaction at a time (a lock), the
silent interval of 3.5 characters the RTU standard requires between frames, and the
mapping of pymodbus's outcomes to the driver error tree:

* nothing came back within the timeout -> :class:`ChipNotFoundError` (absent);
* bytes came back but no valid frame (CRC mismatch) -> :class:`ChecksumError`;
* an exception response -> :class:`IllegalRegisterError` (01/02/03),
  :class:`DeviceBusyError` (05/06, after ``busy_retries`` more tries), otherwise
  :class:`DeviceRejectedError`;
* the port or host cannot be opened -> :class:`BusError`.

pymodbus is an optional dependency (``pip install 'edge-drivers[modbus]'``): it is imported
when a link opens, and its absence is one :class:`BusError` line saying how to install it.
:class:`ModbusLinks` opens each line once and hands the same link to every sensor on it.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edge_drivers.clock import SYSTEM_CLOCK, Clock
from edge_drivers.errors import (
    BusError,
    ChecksumError,
    ChipNotFoundError,
    DeviceBusyError,
    DeviceRejectedError,
    IllegalRegisterError,
)

if TYPE_CHECKING:
    from pymodbus.client.base import ModbusBaseSyncClient

TCP_SCHEME = "tcp://"
INSTALL_HINT = "the modbus driver needs pymodbus: pip install 'edge-drivers[modbus]'"

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge (busy with a long command)",
    6: "server device busy",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
_ILLEGAL = frozenset({1, 2, 3})
_BUSY = frozenset({5, 6})
_GATEWAY_NO_ANSWER = frozenset({10, 11})


def silent_interval_s(baudrate: int, bits_per_char: int = 11) -> float:
    """t3.5 of the Modbus over serial line spec (v1.02, 2.5.1.1): 3.5 characters, and a fixed
    1.75 ms above 19200 baud, where the character time gets too short for UARTs to time."""
    if baudrate > 19200:
        return 0.00175
    return 3.5 * bits_per_char / baudrate


@dataclass(frozen=True)
class LineSettings:
    """How a line is opened; every sensor on one line must agree."""

    port: str
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1
    timeout_s: float = 0.5

    @property
    def tcp(self) -> bool:
        return self.port.startswith(TCP_SCHEME)

    def describe(self) -> str:
        if self.tcp:
            return self.port
        return f"{self.port} {self.baudrate} 8{self.parity}{self.stopbits}"


def _tcp_address(port: str) -> tuple[str, int]:
    host, sep, number = port.removeprefix(TCP_SCHEME).rpartition(":")
    if not sep:
        return port.removeprefix(TCP_SCHEME), 502
    if not number.isdigit() or not 0 < int(number) < 65536:
        raise BusError(f"{port}: expected tcp://HOST:PORT, e.g. tcp://192.0.2.10:502")
    return host.strip("[]"), int(number)


class ModbusLink:
    """A line with its pymodbus client: one request at a time, gaps kept, errors mapped."""

    def __init__(self, settings: LineSettings, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        bits = 1 + 8 + (settings.parity != "N") + settings.stopbits  # start, data, parity, stop
        self._gap_s = 0.0 if settings.tcp else silent_interval_s(settings.baudrate, bits)
        self._quiet_since = float("-inf")
        self._received = 0
        self.users: weakref.WeakSet[object] = weakref.WeakSet()
        """The sensors reading through this line; when none is left, it may be reopened otherwise."""
        self.requests = 0
        """Requests sent, for tests and metrics."""
        self._client = self._make_client()

    def _make_client(self) -> ModbusBaseSyncClient:
        try:
            from pymodbus.client import ModbusSerialClient, ModbusTcpClient
        except ImportError as exc:
            raise BusError(INSTALL_HINT) from exc
        # Each failure pymodbus logs is raised to our caller as a DriverError, which says more;
        # its own lines would tell it twice.  A logger someone configured keeps its level.
        quiet = logging.getLogger("pymodbus")
        if quiet.level == logging.NOTSET:
            quiet.setLevel(logging.CRITICAL)
        s = self.settings
        # retries=0: a silent slave costs one timeout, and the sampler's circuit breaker decides
        # when to ask it again; the other slaves on the line are not held up behind retries.
        if s.tcp:
            host, port = _tcp_address(s.port)
            return ModbusTcpClient(host, port=port, timeout=s.timeout_s, retries=0, trace_packet=self._trace)
        return ModbusSerialClient(
            s.port,
            baudrate=s.baudrate,
            parity=s.parity,
            stopbits=s.stopbits,
            bytesize=8,
            timeout=s.timeout_s,
            retries=0,
            trace_packet=self._trace,
        )

    def _trace(self, sending: bool, data: bytes) -> bytes:
        # pymodbus hands us the bytes it has gathered so far: any at all means a device
        # answered, so a request that still fails was garbled rather than unanswered.
        if not sending:
            self._received = max(self._received, len(data))
        return data

    def connect(self) -> None:
        """Open the port or connection now (pymodbus would otherwise do it on the first read)."""
        with self._lock:
            self._connect()

    def _connect(self) -> None:
        if not self._client.connect():
            raise BusError(
                f"cannot open Modbus line {self.settings.describe()}: check the device name, "
                "permissions (the 'dialout' group) or the host and port"
            )

    def read(self, unit: int, function: str, address: int, count: int, *, busy_retries: int = 2) -> list[int]:
        """``count`` registers (or bits as 0/1) of ``function`` from ``address`` of slave ``unit``."""
        for attempt in range(busy_retries + 1):
            try:
                return self._transaction(unit, function, address, count)
            except DeviceBusyError:
                if attempt == busy_retries:
                    raise
                self._clock.sleep(self.settings.timeout_s)
        raise AssertionError("unreachable")

    def answers(self, unit: int) -> bool:
        """Whether slave ``unit`` answers at all (data or an exception both count), for a scan."""
        try:
            self._transaction(unit, "holding", 0, 1)
        except DeviceRejectedError:
            return True
        except (ChipNotFoundError, ChecksumError):
            return False
        return True

    def _transaction(self, unit: int, function: str, address: int, count: int) -> list[int]:
        from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

        what = f"unit {unit} on {self.settings.port}"
        with self._lock:
            self._connect()
            wait = self._quiet_since + self._gap_s - self._clock.monotonic()
            if wait > 0:
                self._clock.sleep(wait)
            self._received = 0
            self.requests += 1
            try:
                response = self._request(unit, function, address, count)
            except ModbusIOException as exc:
                if self._received:
                    raise ChecksumError(
                        f"{what}: {self._received} bytes came back but no valid frame (CRC error or noise on the line)"
                    ) from exc
                raise ChipNotFoundError(
                    f"{what}: no answer within {self.settings.timeout_s:g} s "
                    "(check the unit id, wiring A/B, termination and line settings)"
                ) from exc
            except ConnectionException as exc:
                self._client.close()  # type: ignore[no-untyped-call]  # pymodbus leaves it unannotated
                raise BusError(f"Modbus line {self.settings.describe()} failed: {exc}") from exc
            except ModbusException as exc:
                raise BusError(f"{what}: {exc}") from exc
            finally:
                self._quiet_since = self._clock.monotonic()
        if response.isError():
            raise rejected(what, response.exception_code)
        values: Sequence[Any] = response.bits if function in ("coil", "discrete") else response.registers
        if len(values) < count:
            raise ChecksumError(f"{what}: asked for {count} values, got {len(values)}")
        return [int(v) for v in values[:count]]

    def _request(self, unit: int, function: str, address: int, count: int) -> Any:
        c = self._client
        if function == "holding":
            return c.read_holding_registers(address, count=count, device_id=unit)
        if function == "input":
            return c.read_input_registers(address, count=count, device_id=unit)
        if function == "coil":
            return c.read_coils(address, count=count, device_id=unit)
        if function == "discrete":
            return c.read_discrete_inputs(address, count=count, device_id=unit)
        raise ValueError(f"unknown Modbus function {function!r}")

    def close(self) -> None:
        with self._lock:
            self._client.close()  # type: ignore[no-untyped-call]  # pymodbus leaves it unannotated


def rejected(what: str, code: int) -> DeviceRejectedError | ChipNotFoundError:
    """The error for exception response ``code``."""
    text = f"{what}: exception {code:02d} {EXCEPTION_NAMES.get(code, 'unknown')}"
    if code in _ILLEGAL:
        return IllegalRegisterError(text, code=code)
    if code in _BUSY:
        return DeviceBusyError(text, code=code)
    if code in _GATEWAY_NO_ANSWER:
        return ChipNotFoundError(text)
    return DeviceRejectedError(text, code=code)


class ModbusLinks:
    """Each line opened once, shared by the sensors on it; closed together."""

    def __init__(self, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._links: dict[str, ModbusLink] = {}
        self._lock = threading.Lock()

    def link(
        self,
        port: str,
        *,
        baudrate: int = 9600,
        parity: str = "N",
        stopbits: int = 1,
        timeout_s: float = 0.5,
        user: object | None = None,
    ) -> ModbusLink:
        """The link of ``port`` (a serial device or ``tcp://host:port``), opened on first use
        with these settings, and ``user`` counted among its users.  Asking for it with other
        settings is an error while it has users; a line whose users are all gone (a reload
        that changed the settings of every sensor on it) is closed and opened anew."""
        settings = LineSettings(port, baudrate, parity, stopbits, timeout_s)
        with self._lock:
            found = self._links.get(settings.port)
            if found is not None and found.settings != settings and not found.users:
                found.close()
                found = None
            if found is None:
                found = self._links[settings.port] = ModbusLink(settings, clock=self._clock)
            elif found.settings != settings:
                raise BusError(
                    f"{settings.port} is already open as {found.settings.describe()} "
                    f"(timeout {found.settings.timeout_s:g} s); every sensor on one line needs the same settings"
                )
            if user is not None:
                found.users.add(user)
            return found

    def close(self) -> None:
        with self._lock:
            for link in self._links.values():
                link.close()
            self._links.clear()
