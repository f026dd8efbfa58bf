"""The progress monitor behind ``WATCHDOG=1``: alive means every stage is making progress.

A stuck event loop stops the pings by itself (the pinger runs on it).  That is not
enough: a loop can be perfectly alive while the sampling of one sensor waits forever
on a commit, or while the uplink's task is wedged.  So each pipeline stage is watched:

- a *heartbeat* stage calls :meth:`ProgressMonitor.beat`;
- a *probed* stage gives a ``progress()`` function returning a token that changes
  whenever it does something (counters), and an ``idle()`` function that is true when
  it legitimately has nothing to do.  The monitor polls both on every check.

A stage stalls when it has neither progressed nor been idle for longer than its budget.
What counts as progress is chosen per stage so that an outage is not a stall: the
uplink's reconnect attempts are progress while the broker is away, and a sensor whose
reads all fail still ticks its schedule.

:func:`keep_alive` is the pinger: it sends ``WATCHDOG=1`` only while nothing has
stalled, refreshes ``STATUS=``, and logs a stall once when it begins and once when it ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from edge_agent.service.notify import Notifier

log = logging.getLogger(__name__)

CHECK_EVERY_S = 5.0
"""How often the pinger runs when systemd set no (or a slower) watchdog interval."""


@dataclass
class _Stage:
    name: str
    budget: float
    last_progress: float
    progress: Callable[[], Hashable] | None = None
    idle: Callable[[], bool] | None = None
    token: Hashable = None


@dataclass(frozen=True)
class Stall:
    stage: str
    silent_s: float
    budget_s: float

    def __str__(self) -> str:
        return f"{self.stage} made no progress for {self.silent_s:.0f} s (budget {self.budget_s:.0f} s)"


class ProgressMonitor:
    """Stages, their budgets, and when each last made progress."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._stages: dict[str, _Stage] = {}

    def heartbeat(self, name: str, budget: float) -> None:
        """Watch a stage that calls :meth:`beat` itself."""
        self._stages[name] = _Stage(name, budget, self._clock())

    def watch(
        self,
        name: str,
        budget: float,
        progress: Callable[[], Hashable],
        idle: Callable[[], bool] = lambda: False,
    ) -> None:
        """Watch a stage by polling its ``progress()`` token and ``idle()``."""
        self._stages[name] = _Stage(name, budget, self._clock(), progress, idle, progress())

    def forget(self, name: str) -> None:
        self._stages.pop(name, None)

    def beat(self, name: str) -> None:
        stage = self._stages.get(name)
        if stage is not None:
            stage.last_progress = self._clock()

    @property
    def stages(self) -> list[str]:
        return list(self._stages)

    def check(self) -> list[Stall]:
        """Poll the probed stages; the stages over their budget."""
        now = self._clock()
        stalls: list[Stall] = []
        for stage in list(self._stages.values()):
            if stage.progress is not None:
                token = stage.progress()
                if token != stage.token or (stage.idle is not None and stage.idle()):
                    stage.token = token
                    stage.last_progress = now
            silent = now - stage.last_progress
            if silent > stage.budget:
                stalls.append(Stall(stage.name, silent, stage.budget))
        return stalls


async def keep_alive(
    notifier: Notifier,
    monitor: ProgressMonitor,
    status_line: Callable[[], str],
    *,
    every: float | None = None,
    record: Callable[[list[Stall]], None] | None = None,
) -> None:
    """Ping systemd while every stage progresses; keep ``STATUS=`` current.  Runs until cancelled."""
    interval = every or min(notifier.watchdog_interval or CHECK_EVERY_S, CHECK_EVERY_S)
    stalled: set[str] = set()
    last_status = ""
    while True:
        stalls = monitor.check()
        if record is not None:
            record(stalls)
        names = {s.stage for s in stalls}
        for stall in stalls:
            if stall.stage not in stalled:
                log.error("watchdog: %s; withholding WATCHDOG=1 so that systemd restarts the service", stall)
        for name in stalled - names:
            log.info("watchdog: %s makes progress again", name)
        stalled = names
        if not stalls:
            notifier.watchdog()
        line = status_line()
        if stalls:
            line = f"STALLED: {', '.join(sorted(names))}; {line}"
        if line != last_status:
            notifier.status(line)
            last_status = line
        await asyncio.sleep(interval)
