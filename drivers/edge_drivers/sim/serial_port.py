"""A pyserial-compatible simulated serial port fed by a byte-level device model.

:class:`SimulatedSerial` behaves like ``serial.Serial`` with a read timeout: ``read``
returns up to ``size`` bytes, fewer when the timeout expires; ``readline`` stops at
``\\n``; ``write`` hands host commands to the device model.  Time comes from the
injected clock, so with a :class:`edge_drivers.clock.ManualClock` a test that waits for a
frame two seconds away returns at once.

A :class:`SerialDeviceModel` says what bytes the device sends and when.  Line faults
are injected on the port: garbage bytes, random bit corruption, silence, and a
disconnect (``SerialException``, what pyserial raises when a USB adapter is pulled).
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Callable

import serial

from edge_drivers.clock import SYSTEM_CLOCK, Clock
from edge_drivers.sim.recent import RecentBytes


class LineTransmitter:
    """What a device has put on its TX line, released at the line's pace.

    At 9600 baud 8N1 a byte takes 10/9600 s (about 1 ms), so a 32-byte frame takes a
    third of a frame period to arrive and a read can catch half of it, as on hardware.
    """

    def __init__(self, now: float, *, baudrate: int = 9600) -> None:
        self.byte_s = 10 / baudrate
        self._queue: deque[tuple[float, bytes]] = deque()
        self._line_free_at = now

    def send(self, at: float, data: bytes) -> None:
        """Queue ``data`` to start at ``at``, or when the line is free if it is busy then."""
        start = max(at, self._line_free_at)
        self._queue.append((start, data))
        self._line_free_at = start + len(data) * self.byte_s

    def poll(self, now: float) -> bytes:
        """The bytes fully transmitted by ``now`` and not yet returned."""
        out = bytearray()
        while self._queue:
            start, data = self._queue[0]
            due = min(len(data), int((now - start) / self.byte_s + 1e-9) + 1) if now >= start else 0
            if due <= 0:
                break
            out += data[:due]
            if due < len(data):
                self._queue[0] = (start + due * self.byte_s, data[due:])
                break
            self._queue.popleft()
        return bytes(out)

    def next_byte_at(self) -> float | None:
        """When the next queued byte starts, or None when nothing is queued."""
        return self._queue[0][0] if self._queue else None


class SerialDeviceModel:
    """A device on the other end of a serial line."""

    def __init__(self, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock

    def poll(self, now: float) -> bytes:
        """Bytes the device has sent up to ``now`` and not yet returned."""
        raise NotImplementedError

    def next_output_at(self, now: float) -> float | None:
        """When the device will next send something, or ``None`` if it will not."""
        raise NotImplementedError

    def receive(self, data: bytes) -> None:
        """The host wrote ``data`` to the device."""


class SimulatedSerial:
    """A ``serial.Serial`` look-alike connected to a :class:`SerialDeviceModel`."""

    def __init__(
        self,
        device: SerialDeviceModel,
        *,
        port: str = "sim://",
        baudrate: int = 9600,
        timeout: float | None = 1.0,
        clock: Clock = SYSTEM_CLOCK,
        seed: int | None = None,
    ) -> None:
        self.device = device
        self.port = port
        self.name = port
        self.baudrate = baudrate
        self.timeout = timeout
        self.is_open = True
        self.silent = False
        self.corrupt_probability = 0.0
        self.disconnected = False
        self.bytes_written = RecentBytes()
        self._clock = clock
        self._rng = random.Random(seed)
        self._rx: deque[int] = deque()
        self._lock = threading.Lock()

    # -- fault injection -----------------------------------------------------------------

    def inject_garbage(self, data: bytes) -> None:
        """Put ``data`` on the line ahead of whatever the device sends next."""
        with self._lock:
            self._pull()
            self._rx.extend(data)

    def set_silent(self, silent: bool = True) -> None:
        """Drop everything the device sends (a cut TX wire, a sleeping sensor)."""
        self.silent = silent

    def set_corruption(self, probability: float) -> None:
        """Flip one random bit in a byte with this probability (electrical noise)."""
        self.corrupt_probability = probability

    # -- pyserial API ----------------------------------------------------------------------

    @property
    def in_waiting(self) -> int:
        with self._lock:
            self._check_open()
            self._pull()
            return len(self._rx)

    def read(self, size: int = 1) -> bytes:
        return self._read_until(lambda buf: len(buf) >= size, size)

    def readline(self, size: int | None = -1, /) -> bytes:
        limit = -1 if size is None else size
        return self._read_until(lambda buf: buf.endswith(b"\n"), limit)

    def read_until(self, expected: bytes = b"\n", size: int | None = None) -> bytes:
        return self._read_until(lambda buf: buf.endswith(expected), -1 if size is None else size)

    def write(self, data: bytes, /) -> int:
        with self._lock:
            self._check_open()
            self.bytes_written.extend(data)
            self.device.receive(bytes(data))
            return len(data)

    def flush(self) -> None:
        self._check_open()

    def reset_input_buffer(self) -> None:
        with self._lock:
            self._check_open()
            self._pull()
            self._rx.clear()

    def reset_output_buffer(self) -> None:
        self._check_open()

    def close(self) -> None:
        self.is_open = False

    def open(self) -> None:
        self.is_open = True

    def __enter__(self) -> SimulatedSerial:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.disconnected:
            raise serial.SerialException(
                5, f"device reports readiness to read but returned no data ({self.port})"
            )
        if not self.is_open:
            raise serial.PortNotOpenError()

    def _pull(self) -> None:
        data = self.device.poll(self._clock.monotonic())
        if self.silent or not data:
            return
        if self.corrupt_probability:
            mutable = bytearray(data)
            for i in range(len(mutable)):
                if self._rng.random() < self.corrupt_probability:
                    mutable[i] ^= 1 << self._rng.randrange(8)
            data = bytes(mutable)
        self._rx.extend(data)

    def _read_until(self, done: Callable[[bytearray], bool], size: int) -> bytes:
        deadline = None if self.timeout is None else self._clock.monotonic() + self.timeout
        out = bytearray()
        while True:
            with self._lock:
                self._check_open()
                self._pull()
                while self._rx and not done(out) and (size < 0 or len(out) < size):
                    out.append(self._rx.popleft())
            if done(out) or (size >= 0 and len(out) >= size):
                return bytes(out)
            now = self._clock.monotonic()
            if deadline is not None and now >= deadline:
                return bytes(out)
            upcoming = None if self.silent else self.device.next_output_at(now)
            wake = deadline if upcoming is None else upcoming if deadline is None else min(upcoming, deadline)
            if wake is None:
                raise RuntimeError("simulated read with timeout=None on a device that will never send")
            self._clock.sleep(max(wake - now, 0.0005))
