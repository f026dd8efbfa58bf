"""SIGHUP: re-read the configuration (same file, same environment), validate, apply.

- Invalid: one log line naming every problem; the running configuration stays.
- Valid: sensors added, removed or changed are started/stopped one by one (the others
  keep sampling; the outbox is not touched, so nothing committed is lost); logging and
  the health policy apply at once (a health change restarts the sensor tasks, so every
  breaker uses the new policy).
- ``device``, ``storage``, ``mqtt`` and ``metrics`` changes are NOT applied: the
  identity, the outbox file, the broker session and the listener belong to the process.
  Nor are ``[[tests]]`` changes yet (the sensor-test scheduler is built once per run; it
  can take them live by registering a hook).  They are logged as needing a restart, and
  the running values stay in force.

Other components hook in with :class:`ReloadHooks`: a callback ``(old, new)`` run after
the sensors are applied, for instance to re-read calibration or sensor tests.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from edge_agent.settings import Settings

RESTART_SECTIONS = ("device", "storage", "mqtt", "metrics", "tests")
"""Sections a running daemon keeps until it is restarted."""

ReloadHook = Callable[[Settings, Settings], Awaitable[None]]


@dataclass
class ReloadPlan:
    settings: Settings
    """What will run: the new file, with the restart-only sections as they were."""
    needs_restart: list[str] = field(default_factory=list)
    health_changed: bool = False


def plan_reload(running: Settings, new: Settings) -> ReloadPlan:
    changed = [name for name in RESTART_SECTIONS if getattr(running, name) != getattr(new, name)]
    kept = new.model_copy(update={name: getattr(running, name) for name in RESTART_SECTIONS})
    return ReloadPlan(kept, changed, running.health != new.health)


class ReloadHooks:
    """Callbacks run on every applied reload, in registration order."""

    def __init__(self) -> None:
        self._hooks: list[ReloadHook] = []

    def add(self, hook: ReloadHook) -> None:
        self._hooks.append(hook)

    async def run(self, old: Settings, new: Settings) -> None:
        for hook in self._hooks:
            await hook(old, new)
