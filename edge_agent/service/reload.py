"""SIGHUP: re-read the configuration (same file, same environment), validate, apply.

- Invalid: one log line naming every problem; the running configuration stays.
- Valid: sensors added, removed or changed are started/stopped one by one (the others
  keep sampling; the outbox is not touched, so nothing committed is lost); logging and
  the health policy apply at once (a health change restarts the sensor tasks, so every
  breaker uses the new policy).
- ``mqtt`` changes reconnect the uplink: the old session says offline and disconnects
  cleanly, what was in flight stays in the outbox and goes over the new one.
- ``device``, ``storage`` and ``metrics`` changes are NOT applied: the identity, the
  outbox file and the listener belong to the process.
  Nor are ``[[tests]]`` changes yet (the sensor-test scheduler is built once per run; it
  can take them live by registering a hook).  They are logged as needing a restart, and
  the running values stay in force.

Other components hook in with :class:`ReloadHooks`: a callback ``(old, new)`` run after
the sensors are applied, for instance to re-read calibration or sensor tests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from edge_agent.errors import ConfigError
from edge_agent.events import NewEvent
from edge_agent.sampling.registry import DriverRegistry
from edge_agent.service.logs import configure_logging, secrets_of
from edge_agent.service.notify import Notifier
from edge_agent.service.sensor_set import SensorSet
from edge_agent.service.snapshot import status_line
from edge_agent.service.state import DaemonState
from edge_agent.settings import MQTTSettings, Settings, load_settings

log = logging.getLogger(__name__)

RESTART_SECTIONS = ("device", "storage", "metrics", "tests", "alarms")
"""Sections a running daemon keeps until it is restarted."""

ReloadHook = Callable[[Settings, Settings], Awaitable[None]]


@dataclass
class ReloadPlan:
    settings: Settings
    """What will run: the new file, with the restart-only sections as they were."""
    needs_restart: list[str] = field(default_factory=list)
    health_changed: bool = False
    mqtt_changed: bool = False


def plan_reload(running: Settings, new: Settings) -> ReloadPlan:
    changed = [name for name in RESTART_SECTIONS if getattr(running, name) != getattr(new, name)]
    kept = new.model_copy(update={name: getattr(running, name) for name in RESTART_SECTIONS})
    return ReloadPlan(kept, changed, running.health != new.health, running.mqtt != new.mqtt)


class ReloadHooks:
    """Callbacks run on every applied reload, in registration order."""

    def __init__(self) -> None:
        self._hooks: list[ReloadHook] = []

    def add(self, hook: ReloadHook) -> None:
        self._hooks.append(hook)

    async def run(self, old: Settings, new: Settings) -> None:
        for hook in self._hooks:
            await hook(old, new)


class Reloadable(Protocol):
    """What a reload needs of the daemon (:class:`edge_agent.daemon.main.Daemon`)."""

    settings: Settings
    config_path: Path | None
    registry: DriverRegistry
    state: DaemonState
    notifier: Notifier
    reload_hooks: ReloadHooks

    async def emit(self, event: NewEvent) -> object: ...

    def device_event(self, data: dict[str, Any]) -> NewEvent: ...

    def snapshot(self) -> dict[str, Any]: ...

    async def replace_uplink(self, mqtt: MQTTSettings) -> None: ...


async def apply_reload(daemon: Reloadable, sensors: SensorSet) -> None:
    """One SIGHUP: ``RELOADING=1``, re-read, validate, apply (or refuse), ``READY=1``."""
    record = daemon.state.reloads
    record.count += 1
    record.last_at = time.time()
    path = daemon.config_path
    if path is None:
        log.warning("reload: no configuration file to re-read (started without one)")
        return
    daemon.state.run_state = "reloading"
    daemon.notifier.reloading()
    try:
        try:
            new = await asyncio.to_thread(load_settings, path, registry=daemon.registry)
        except ConfigError as exc:
            problems = [str(p) for p in exc.problems]
            record.rejected += 1
            record.last_result = "rejected: " + "; ".join(problems)
            log.error("reload rejected, the running configuration stays: %s", "; ".join(problems))
            await daemon.emit(
                daemon.device_event({"event": "config_reload", "result": "rejected", "problems": problems})
            )
            return
        old = daemon.settings
        plan = plan_reload(old, new)
        daemon.settings = plan.settings
        configure_logging(plan.settings.logging, secrets=secrets_of(plan.settings))
        diff = await sensors.apply(plan.settings.sensors, restart_all=plan.health_changed)
        if plan.mqtt_changed:
            log.info("reload: [mqtt] changed; reconnecting the uplink with the new settings")
            await daemon.replace_uplink(plan.settings.mqtt)
        await daemon.reload_hooks.run(old, plan.settings)
        record.needs_restart = plan.needs_restart
        record.last_result = f"applied: {diff}"
        waiting = (
            f"; not applied until a restart: {', '.join(plan.needs_restart)}" if plan.needs_restart else ""
        )
        log.info("reload applied (%s)%s", diff, waiting)
        data = {
            "event": "config_reload",
            "result": "applied",
            **vars(diff),
            "mqtt_reconnected": plan.mqtt_changed,
            "needs_restart": plan.needs_restart,
        }
        await daemon.emit(daemon.device_event(data))
    finally:
        daemon.state.run_state = "running"
        daemon.notifier.ready(status_line(daemon.snapshot()))
