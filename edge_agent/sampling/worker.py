"""One daemon thread per sensor, so a hung driver blocks only itself.

Drivers are blocking (they sleep for conversion times, wait on serial lines).  The
event loop hands each call to the sensor's own worker thread and awaits the result
with a timeout.  A call that never returns leaves its thread stuck — Python cannot
kill a thread — but the thread is a daemon (it cannot hold up the process exit) and
the sensor simply reports busy until the call comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_STOP = object()


class SensorAccess:
    """A sensor's driver and worker, shared by sampling and sensor tests: one call at a time.

    Callers take turns (``turn``) instead of finding the worker busy, so a sensor test
    taking ten readings never makes the sampler skip a tick; it only delays it a little.
    """

    def __init__(self, name: str, driver: Any, timeout: float) -> None:
        self.name = name
        self.driver = driver
        self.timeout = timeout
        self.worker = SensorWorker(name)
        self.turn = asyncio.Lock()

    async def call(self, fn: Callable[[], T], timeout: float | None = None) -> T:
        """``fn()`` on the worker in turn; ``TimeoutError`` if it (or a hung earlier call) overruns."""
        async with self.turn:
            if self.worker.busy:
                raise TimeoutError(f"sensor {self.name}: an earlier call is still running (driver hung?)")
            return await self.worker.call(fn, self.timeout if timeout is None else timeout)

    def stop(self) -> None:
        self.worker.stop()


class SensorWorker:
    """Runs blocking calls for one sensor on its own daemon thread."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._busy = False
        self._thread = threading.Thread(target=self._serve, name=f"sensor-{name}", daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        """A call is still running (possibly hung past its timeout)."""
        return self._busy

    def submit(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._busy = True
        self._jobs.put((fn, future, loop))
        return future

    async def call(self, fn: Callable[[], T], timeout: float) -> T:
        """``fn()`` on the worker; ``TimeoutError`` if it takes longer than ``timeout``."""
        future = self.submit(fn)
        # shield: a timeout must not cancel the future the worker will still complete.
        # asyncio.timeout, not wait_for: Python 3.11's wait_for returns the result and
        # swallows a cancellation that arrives in the same loop iteration, and a sensor
        # task that missed its cancellation at shutdown sampled on forever.
        async with asyncio.timeout(timeout):
            return await asyncio.shield(future)

    def stop(self) -> None:
        self._jobs.put(_STOP)

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is _STOP:
                return
            fn, future, loop = job
            result: object = None
            error: BaseException | None = None
            try:
                result = fn()
            except BaseException as exc:  # handed to the awaiting coroutine, not swallowed
                error = exc
            # Not busy before the result is handed over: the awaiting coroutine may call
            # again as soon as it has it.
            self._busy = False
            self._deliver(loop, future, result, error)

    @staticmethod
    def _deliver(
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
        result: object,
        exc: BaseException | None,
    ) -> None:
        def settle() -> None:
            if future.done():
                return
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(result)

        # A closed loop means nobody waits for this result any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle)
