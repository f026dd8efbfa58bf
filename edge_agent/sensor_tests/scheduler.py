"""Runs each scheduled sensor test on its own fixed-rate schedule, for as long as the daemon runs.

The first run of a test comes soon after start (``min(schedule, FIRST_RUN_S)``, spread a
little so tests do not all start at once), so a newcomer sees results within a minute;
then every ``schedule``.  A run that overruns its period skips the missed ticks rather
than bursting to catch up.  A test never stops the scheduler: the runner turns every
failure into a result.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from edge_agent.sensor_tests.config import TestSettings
from edge_agent.sensor_tests.runner import TestRunner

FIRST_RUN_S = 20.0
STAGGER_S = 2.0


async def run_schedule(runner: TestRunner, *, monotonic: Callable[[], float] = time.monotonic) -> None:
    """Every enabled test with a ``schedule``, until cancelled."""
    scheduled = [t for t in runner.enabled() if t.schedule is not None]
    async with asyncio.TaskGroup() as tasks:
        for i, test in enumerate(scheduled):
            tasks.create_task(_every(runner, test, i * STAGGER_S, monotonic), name=f"test-{test.name}")


async def _every(
    runner: TestRunner, test: TestSettings, stagger: float, monotonic: Callable[[], float]
) -> None:
    assert test.schedule is not None
    period = test.schedule
    next_run = monotonic() + min(period, FIRST_RUN_S) + stagger % period
    while True:
        delay = next_run - monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await runner.run(test, "schedule")
        next_run += period
        now = monotonic()
        if next_run < now:
            next_run = now + period - (now - next_run) % period
