"""The sensor tasks of the daemon, by name, so a reload can restart only what changed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from edge_agent.settings import SensorSettings

StartSensor = Callable[[SensorSettings], Coroutine[Any, Any, None]]
Spawn = Callable[[Coroutine[Any, Any, None], str], "asyncio.Task[None]"]


@dataclass
class SensorDiff:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def __str__(self) -> str:
        parts = [f"{what} {', '.join(names)}" for what, names in vars(self).items() if names]
        return "; ".join(parts) or "no sensor changes"


def diff_sensors(old: Sequence[SensorSettings], new: Sequence[SensorSettings]) -> SensorDiff:
    """Enabled sensors added, removed or changed (any field) by name; disabled = absent."""
    before = {s.name: s for s in old if s.enabled}
    after = {s.name: s for s in new if s.enabled}
    return SensorDiff(
        added=[n for n in after if n not in before],
        removed=[n for n in before if n not in after],
        changed=[n for n in after if n in before and after[n] != before[n]],
    )


class SensorSet:
    """One task per enabled sensor; :meth:`apply` stops and starts only what differs."""

    def __init__(self, start: StartSensor, spawn: Spawn) -> None:
        self._start = start
        self._spawn = spawn
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._settings: dict[str, SensorSettings] = {}

    @property
    def names(self) -> list[str]:
        return list(self._tasks)

    def start_all(self, sensors: Sequence[SensorSettings]) -> None:
        for sensor in sensors:
            if sensor.enabled:
                self._launch(sensor)

    async def apply(self, sensors: Sequence[SensorSettings], *, restart_all: bool = False) -> SensorDiff:
        diff = diff_sensors(list(self._settings.values()), sensors)
        if restart_all:
            diff.changed = [n for n in self._settings if n in {s.name for s in sensors if s.enabled}]
        await self._stop([*diff.removed, *diff.changed])
        wanted = set(diff.added) | set(diff.changed)
        for sensor in sensors:
            if sensor.name in wanted:
                self._launch(sensor)
        return diff

    async def stop_all(self) -> None:
        await self._stop(list(self._tasks))

    def _launch(self, sensor: SensorSettings) -> None:
        self._settings[sensor.name] = sensor
        self._tasks[sensor.name] = self._spawn(self._start(sensor), f"sensor-{sensor.name}")

    async def _stop(self, names: list[str]) -> None:
        tasks = [self._tasks.pop(n) for n in names if n in self._tasks]
        for name in names:
            self._settings.pop(name, None)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
