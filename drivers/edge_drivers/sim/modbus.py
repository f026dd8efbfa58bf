"""Simulated Modbus slaves on a simulated line: a pseudo-terminal (RTU) or a TCP socket.

The line is real to the driver: :class:`SimulatedModbusBus` opens a pty pair and serves
the far end from a thread, so the driver's pymodbus client opens ``bus.port`` (``/dev/pts/N``)
like a USB-RS-485 adapter; with ``tcp=True`` it listens on 127.0.0.1 and ``bus.port`` is
``tcp://127.0.0.1:PORT``.  Requests are decoded and answers encoded by pymodbus's own
framers (RTU with its CRC, or the TCP MBAP header); nothing here frames bytes by hand.

Like an RS-485 line, a unit id with no slave gets no answer.  Faults, per slave
(:class:`SimulatedSlave`): ``silent`` (never answers), ``corrupt_next`` (the next answers
fail their CRC), ``busy_next`` (exception 06), ``exception`` (every request is answered
with that code), ``delay_s`` (a slow slave: the line stays busy meanwhile), and a request
for an address the slave does not have is answered with exception 02.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import tty
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from edge_drivers.clock import SYSTEM_CLOCK, Clock
from edge_drivers.modbus.registers import BIT_FUNCTIONS, DataType, Order, encode, registers_from
from edge_drivers.sim.recent import RecentList
from edge_drivers.sim.signals import Signal

FUNCTIONS = {1: "coil", 2: "discrete", 3: "holding", 4: "input"}
ILLEGAL_FUNCTION = 1
ILLEGAL_ADDRESS = 2
DEVICE_BUSY = 6


class SimulatedSlave:
    """One slave: four tables of values, the requests it saw, and its faults."""

    def __init__(
        self,
        unit: int,
        tables: Mapping[str, Mapping[int, int]] | None = None,
        *,
        on_request: Callable[[SimulatedSlave], None] | None = None,
    ) -> None:
        self.unit = unit
        self.tables: dict[str, dict[int, int]] = {
            f: dict((tables or {}).get(f, {})) for f in FUNCTIONS.values()
        }
        self.on_request = on_request
        """Called before each answer: a live device updates its values here."""
        self.requests: RecentList[tuple[str, int, int]] = RecentList()
        """Every request addressed to this unit, as (function, address, count)."""
        self.silent = False
        self.corrupt_next = 0
        self.busy_next = 0
        self.exception: int | None = None
        self.delay_s = 0.0
        self.lock = threading.Lock()

    def set(
        self,
        function: str,
        address: int,
        value: float,
        data_type: DataType = "uint16",
        word_order: Order = "big",
        byte_order: Order = "big",
    ) -> None:
        """Store ``value`` as the device would (the encoding of the driver's pure code)."""
        with self.lock:
            for i, word in enumerate(encode(value, data_type, word_order, byte_order)):
                self.tables[function][address + i] = word

    def answer(self, function: str, address: int, count: int) -> list[int] | int:
        """The values asked for, or an exception code."""
        if self.on_request is not None:
            self.on_request(self)
        with self.lock:
            if self.exception is not None:
                return self.exception
            if self.busy_next > 0:
                self.busy_next -= 1
                return DEVICE_BUSY
            table = self.tables[function]
            wanted = range(address, address + count)
            if any(a not in table for a in wanted):
                return ILLEGAL_ADDRESS
            return [table[a] for a in wanted]


class SimulatedModbusBus:
    """Slaves behind one simulated line, served from a thread until :meth:`close`."""

    def __init__(self, slaves: Iterable[SimulatedSlave] = (), *, tcp: bool = False) -> None:
        from pymodbus.framer import FramerRTU, FramerSocket
        from pymodbus.pdu import DecodePDU

        self.slaves: dict[int, SimulatedSlave] = {s.unit: s for s in slaves}
        self.frames_in = 0
        """Request frames decoded (addressed to any unit)."""
        self._stop = threading.Event()
        self._framer_type = FramerSocket if tcp else FramerRTU
        self._decoder = DecodePDU
        self._threads: list[threading.Thread] = []
        self._closables: list[Any] = []
        if tcp:
            server = socket.create_server(("127.0.0.1", 0))
            server.settimeout(0.1)
            self._closables.append(server)
            self.port = f"tcp://127.0.0.1:{server.getsockname()[1]}"
            self._start(self._accept, server)
        else:
            master, slave = os.openpty()
            tty.setraw(slave)
            # The far end keeps its own descriptor open, so the line survives the driver
            # closing and reopening the port (as a real adapter does).
            self._closables += [master, slave]
            self.port = os.ttyname(slave)
            self._start(self._serve_pty, master)

    def add(self, slave: SimulatedSlave) -> SimulatedSlave:
        self.slaves[slave.unit] = slave
        return slave

    def _start(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=f"modbus-sim {self.port}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _framer(self) -> Any:
        return self._framer_type(self._decoder(is_server=True))

    def _serve_pty(self, fd: int) -> None:
        framer = self._framer()
        pending = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([fd], [], [], 0.05)
            if not ready:
                continue
            try:
                pending += os.read(fd, 512)
            except OSError:
                return
            pending = self._handle(framer, pending, lambda data: os.write(fd, data))

    def _accept(self, server: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(0.1)
            self._closables.append(conn)
            self._start(self._serve_tcp, conn)

    def _serve_tcp(self, conn: socket.socket) -> None:
        framer = self._framer()
        pending = b""
        while not self._stop.is_set():
            try:
                data = conn.recv(512)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            pending = self._handle(framer, pending + data, conn.sendall)

    def _handle(self, framer: Any, data: bytes, send: Callable[[bytes], object]) -> bytes:
        """Answer every complete request in ``data``; return what is left of it."""
        while data:
            # pymodbus's framer consumes a frame that failed its CRC (and, in RTU, all after
            # it) and returns nothing; an incomplete frame it leaves for more bytes.
            used, request = framer.handleFrame(data, 0, 0)
            data = data[used:]
            if request is None:
                return data
            self.frames_in += 1
            reply = self._reply(request)
            if reply is not None:
                send(reply)
        return data

    def _reply(self, request: Any) -> bytes | None:
        from pymodbus.pdu import ExceptionResponse

        slave = self.slaves.get(request.dev_id)
        if slave is None or slave.silent:
            return None
        function = FUNCTIONS.get(request.function_code)
        if function is None:
            result: list[int] | int = ILLEGAL_FUNCTION
        else:
            slave.requests.append((function, request.address, request.count))
            result = slave.answer(function, request.address, request.count)
        if isinstance(result, int):
            response = ExceptionResponse(request.function_code, result, device_id=request.dev_id)
        else:
            response = _response_class(request.function_code)(dev_id=request.dev_id)
            if function in BIT_FUNCTIONS:
                response.bits = [bool(v) for v in result]
            else:
                response.registers = result
        response.transaction_id = request.transaction_id
        frame: bytes = self._framer().buildFrame(response)
        if slave.delay_s:
            self._stop.wait(slave.delay_s)
        with slave.lock:
            if slave.corrupt_next > 0:
                slave.corrupt_next -= 1
                frame = frame[:-1] + bytes((frame[-1] ^ 0x01,))
        return frame

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=1.0)
        for item in self._closables:
            with contextlib.suppress(OSError):
                item.close() if not isinstance(item, int) else os.close(item)
        self._closables.clear()

    def __enter__(self) -> SimulatedModbusBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _response_class(function_code: int) -> Any:
    from pymodbus.pdu.bit_message import ReadCoilsResponse, ReadDiscreteInputsResponse
    from pymodbus.pdu.register_message import ReadHoldingRegistersResponse, ReadInputRegistersResponse

    return {
        1: ReadCoilsResponse,
        2: ReadDiscreteInputsResponse,
        3: ReadHoldingRegistersResponse,
        4: ReadInputRegistersResponse,
    }[function_code]


# -- the two profiles' devices, live ------------------------------------------------------


def simulated_sdm120(
    unit: int = 1, *, clock: Clock = SYSTEM_CLOCK, seed: int | None = None
) -> SimulatedSlave:
    """An SDM120 on a household circuit: mains voltage and frequency, a varying load,
    power = V·I·PF, and an energy register that counts up."""
    from edge_drivers.modbus.profiles import load_profile

    seeds = iter(range(seed, seed + 4)) if seed is not None else iter([None] * 4)
    voltage = Signal(
        230.0, amplitude=2.0, walk=0.05, noise=0.2, lo=207, hi=253, seed=next(seeds), clock=clock
    )
    current = Signal(
        2.5, amplitude=1.5, period_s=1800, walk=0.02, noise=0.02, lo=0.0, hi=45, seed=next(seeds), clock=clock
    )
    pf = Signal(0.95, walk=0.001, noise=0.002, lo=0.5, hi=1.0, seed=next(seeds), clock=clock)
    frequency = Signal(50.0, walk=0.0005, noise=0.005, lo=49.8, hi=50.2, seed=next(seeds), clock=clock)
    address = {r.quantity: r.address for r in load_profile("sdm120").registers}
    state = {"energy_kwh": 1234.5, "at": clock.monotonic()}

    def refresh(slave: SimulatedSlave) -> None:
        now = clock.monotonic()
        v, i, p = voltage.sample(), current.sample(), pf.sample()
        power = v * i * p
        state["energy_kwh"] += power * max(now - state["at"], 0.0) / 3.6e6
        state["at"] = now
        for name, value in (
            ("voltage_v", v),
            ("current_a", i),
            ("active_power_w", power),
            ("power_factor_ratio", p),
            ("frequency_hz", frequency.sample()),
            ("total_active_energy_kwh", state["energy_kwh"]),
        ):
            slave.set("input", address[name], value, "float32")

    slave = SimulatedSlave(unit, on_request=refresh)
    refresh(slave)
    return slave


def simulated_transmitter(
    unit: int = 2, *, clock: Clock = SYSTEM_CLOCK, seed: int | None = None, range_kpa: float = 100.0
) -> SimulatedSlave:
    """A 0-100 kPa transmitter set to 2 decimals, as the transmitter_4_20ma profile expects."""
    pressure = Signal(
        42.0, amplitude=5.0, walk=0.05, noise=0.05, lo=0.0, hi=range_kpa, seed=seed, clock=clock
    )
    slave = SimulatedSlave(
        unit, {"holding": {0: unit, 1: 3, 2: 1, 3: 2, 4: 0, 5: 0, 6: round(range_kpa * 100)}}
    )

    def refresh(s: SimulatedSlave) -> None:
        s.set("holding", 4, min(pressure.sample() * 100, 32767), "int16")

    slave.on_request = refresh
    refresh(slave)
    return slave


def simulated_bus(*, clock: Clock = SYSTEM_CLOCK, seed: int | None = None) -> SimulatedModbusBus:
    """The demo line of ``port = "sim://"`` (the simulator entry point): an SDM120 at unit 1
    and a 4-20 mA transmitter at unit 2."""
    return SimulatedModbusBus(
        [simulated_sdm120(1, clock=clock, seed=seed), simulated_transmitter(2, clock=clock, seed=seed)]
    )


def registers_table(entries: object) -> dict[str, dict[int, int]]:
    """Zeroed tables holding every register of a map, for a slave that must merely answer."""
    tables: dict[str, dict[int, int]] = {f: {} for f in FUNCTIONS.values()}
    for register in registers_from(entries):
        for a in range(register.address, register.end):
            tables[register.function][a] = 0
    return tables


__all__ = [
    "SimulatedModbusBus",
    "SimulatedSlave",
    "registers_table",
    "simulated_bus",
    "simulated_sdm120",
    "simulated_transmitter",
]
