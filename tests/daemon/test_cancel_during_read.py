"""Stopping a sensor (reload, shutdown) while its read is being delivered must stop it.

On Python 3.11, ``asyncio.wait_for`` returns the result instead of raising when the
cancellation arrives in the same loop iteration as the result (gh-86296): the sensor task
went on sampling, and the ``gather`` of ``SensorSet.stop_all`` (shutdown) or of a reload
waited for it forever.
"""

from __future__ import annotations

import asyncio
import threading
import time

from edge_agent.sensor_worker import SensorWorker


def test_a_cancel_arriving_with_the_result_is_not_swallowed() -> None:
    async def main() -> str:
        loop = asyncio.get_running_loop()
        worker = SensorWorker("t")
        go = threading.Event()
        task = asyncio.create_task(worker.call(lambda: "read" if go.wait(30) else "hung", 30))
        while not worker.busy:
            await asyncio.sleep(0.01)

        def release_then_cancel() -> None:
            # Blocks the loop on purpose: the worker queues the result's delivery first,
            # then the cancel comes in behind it, as from another task in the same iteration.
            go.set()
            deadline = time.monotonic() + 30
            while worker.busy and time.monotonic() < deadline:
                time.sleep(0.001)
            time.sleep(0.05)  # busy clears just before the delivery is queued
            loop.call_soon(task.cancel)

        loop.call_soon(release_then_cancel)
        try:
            value = await task
        except asyncio.CancelledError:
            return "cancelled"
        finally:
            worker.stop()
        return f"returned {value!r}: the cancel was lost"

    assert asyncio.run(main()) == "cancelled"
