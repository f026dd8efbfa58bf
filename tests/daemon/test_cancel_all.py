"""Stopping the daemon's tasks: a cancellation swallowed once does not keep a loop running."""

from __future__ import annotations

import asyncio

from edge_agent.tasks import cancel_all


def test_a_loop_whose_first_cancellation_is_swallowed_is_cancelled_again() -> None:
    """Python 3.11's wait_for returns the result instead of raising CancelledError when the
    awaited future completes in the same loop iteration as the cancel: exactly that here."""

    async def scenario() -> tuple[bool, int]:
        loop = asyncio.get_running_loop()
        read = loop.create_future()
        ticks = 0

        async def sampler() -> None:
            nonlocal ticks
            await asyncio.wait_for(asyncio.shield(read), 5)  # a read completing as we stop
            while True:  # and the loop goes on, as SensorLoop.run would
                ticks += 1
                await asyncio.sleep(0.01)

        task = asyncio.create_task(sampler())
        await asyncio.sleep(0)
        read.set_result({"temperature_c": 20.0})
        await asyncio.wait_for(cancel_all([task], again_after=0.05), 10)
        return task.cancelled(), ticks

    cancelled, ticks = asyncio.run(scenario())
    assert cancelled
    assert ticks >= 1, "the first cancellation was swallowed (else this test proves nothing)"


def test_failed_and_finished_tasks_are_collected_without_hanging() -> None:
    async def scenario() -> None:
        async def fails() -> None:
            raise RuntimeError("boom")

        async def ends() -> None:
            return None

        tasks = [asyncio.create_task(fails()), asyncio.create_task(ends())]
        await asyncio.sleep(0.01)
        await asyncio.wait_for(cancel_all(tasks), 5)

    asyncio.run(scenario())


def test_a_read_completing_as_the_sampler_is_cancelled_does_not_swallow_the_cancel() -> None:
    """SensorWorker.call: the race of the test above must raise CancelledError at the source."""
    from edge_agent.sensor_worker import SensorWorker

    class ControlledWorker(SensorWorker):
        def submit(self, fn):  # type: ignore[no-untyped-def]
            self.pending: asyncio.Future[object] = asyncio.get_running_loop().create_future()
            return self.pending

    async def scenario() -> bool:
        worker = ControlledWorker("race")
        try:
            task = asyncio.create_task(worker.call(lambda: None, 5))
            await asyncio.sleep(0)
            worker.pending.set_result({"x_c": 1.0})  # the read completes...
            task.cancel()  # ...in the same loop iteration as the stop
            try:
                await task
            except asyncio.CancelledError:
                return True
            return False
        finally:
            worker.stop()

    assert asyncio.run(scenario()), "the cancellation was swallowed: a sampling loop would go on"
