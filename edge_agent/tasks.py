"""Ending asyncio tasks for sure.

One ``cancel()`` is not always enough to stop a loop: Python 3.11's ``asyncio.wait_for``
(the sensor loops wait for each read with it) swallows a cancellation that arrives while
its inner future completes, returns the result, and the loop goes on.  The power-cut
campaign (tests/powercut) found a clean stop hanging that way, sampling on until killed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any


async def cancel_all(tasks: Sequence[asyncio.Task[Any]], *, again_after: float = 0.5) -> None:
    """Cancel ``tasks`` and wait until they have all ended, cancelling again any that goes on."""
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=again_after)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: a task that failed earlier is not reported again at exit
