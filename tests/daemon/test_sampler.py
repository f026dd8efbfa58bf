"""Sampling: off the event loop, on schedule, a hung driver times out and blocks nothing else."""

from __future__ import annotations

import asyncio
import threading
import time

from edge_agent.events import NewEvent
from edge_agent.sampling.clock_sync import ClockWatch
from edge_agent.sampling.sampler import SensorLoop
from edge_agent.sampling.worker import SensorWorker
from edge_drivers.errors import BusError


class Counter:
    def __init__(self) -> None:
        self.n = 0
        self.thread: str | None = None

    def read(self) -> dict[str, float]:
        self.n += 1
        self.thread = threading.current_thread().name
        return {"count_total": float(self.n)}


class Hung:
    def __init__(self) -> None:
        self.release = threading.Event()

    def read(self) -> dict[str, float]:
        self.release.wait(10)
        return {"x_total": 1.0}


class Flaky:
    def __init__(self) -> None:
        self.n = 0

    def read(self) -> dict[str, float]:
        self.n += 1
        if self.n % 2:
            raise BusError("nack", errno=121)
        return {"x_total": float(self.n)}


def loop_for(
    driver: object, events: list[NewEvent], *, interval: float = 0.02, timeout: float = 1.0
) -> SensorLoop:
    async def emit(event: NewEvent) -> None:
        events.append(event)

    return SensorLoop(
        "s",
        driver,
        interval=interval,
        timeout=timeout,
        emit=emit,
        boot="b",
        clock=ClockWatch("none"),  # type: ignore[arg-type]
    )


def test_readings_become_events_off_the_event_loop() -> None:
    driver, events = Counter(), []

    async def main() -> None:
        task = asyncio.create_task(loop_for(driver, events).run())
        await asyncio.sleep(0.2)
        task.cancel()

    asyncio.run(main())
    assert 3 <= len(events) <= 12, len(events)  # 10 ticks in 0.2 s; a loaded CI host may lose some
    assert [e.data["count_total"] for e in events] == [float(i) for i in range(1, len(events) + 1)]
    assert all(e.kind == "reading" and e.sensor == "s" and e.clock == "synced" for e in events)
    assert driver.thread == "sensor-s"


def test_hung_driver_times_out_and_other_sensors_keep_their_rate() -> None:
    hung, good = Hung(), Counter()
    hung_events: list[NewEvent] = []
    good_events: list[NewEvent] = []
    slow = loop_for(hung, hung_events, interval=0.05, timeout=0.1)

    async def main() -> None:
        tasks = [asyncio.create_task(slow.run()), asyncio.create_task(loop_for(good, good_events).run())]
        await asyncio.sleep(0.5)
        for t in tasks:
            t.cancel()

    start = time.monotonic()
    asyncio.run(main())
    hung.release.set()
    assert time.monotonic() - start < 2
    assert slow.counters.timeouts == 1
    assert slow.counters.skipped_busy >= 3  # no pile-up of threads behind the hung call
    assert hung_events == []
    assert len(good_events) >= 8  # ~25 at 20 ms in 0.5 s; the hung sensor must not stall it


def test_driver_errors_are_counted_and_sampling_goes_on() -> None:
    events: list[NewEvent] = []
    sensor = loop_for(Flaky(), events)

    async def main() -> None:
        for _ in range(6):
            await sensor.sample_once()

    asyncio.run(main())
    assert sensor.counters.errors == 3 and sensor.counters.reads == 3
    assert [e.data["x_total"] for e in events] == [2.0, 4.0, 6.0]


def test_worker_propagates_exceptions_and_results() -> None:
    async def main() -> None:
        worker = SensorWorker("w")
        assert await worker.call(lambda: 41 + 1, 1.0) == 42
        try:
            await worker.call(lambda: 1 / 0, 1.0)
        except ZeroDivisionError:
            pass
        else:
            raise AssertionError("exception not propagated")
        worker.stop()

    asyncio.run(main())


def test_a_cancelled_call_is_cancelled_even_when_its_result_arrives_at_that_moment() -> None:
    """Python 3.11's ``wait_for`` returns the result and swallows the cancellation when
    both arrive in the same loop iteration: a sensor task cancelled at shutdown then went
    on sampling forever and the daemon never exited (seen once in about 40 SIGTERMs)."""

    async def attempt(steps: int) -> tuple[bool, bool]:
        worker = SensorWorker("w")
        result: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        worker.submit = lambda fn: result  # type: ignore[method-assign,assignment,return-value]
        task = asyncio.create_task(worker.call(lambda: 0, 5.0))
        await asyncio.sleep(0)  # the call is waiting
        result.set_result(1)
        for _ in range(steps):  # let the result travel part of the way to the task
            await asyncio.sleep(0)
        requested = task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        worker.stop()
        return requested, task.cancelled()

    async def main() -> None:
        for steps in range(6):
            requested, cancelled = await attempt(steps)
            assert cancelled or not requested, f"cancellation swallowed after {steps} loop steps"

    asyncio.run(main())
