"""What the running daemon is made of, for whoever reports on it (status, metrics, STATUS=).

Everything here is owned and mutated by the event loop; readers on other threads go
through the loop (see :mod:`edge_agent.service.metrics`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from edge_agent.alarms import AlarmBook
    from edge_agent.outbox.store import Outbox
    from edge_agent.outbox.writer import OutboxWriter
    from edge_agent.remote import CommandStats
    from edge_agent.sampling.health import HealthGuard
    from edge_agent.sampling.sampler import SensorLoop
    from edge_agent.service.watchdog import Stall
    from edge_agent.uplink import Forwarder

RunState = Literal["starting", "running", "reloading", "stopping"]


@dataclass
class ReloadRecord:
    count: int = 0
    rejected: int = 0
    last_at: float | None = None
    """Wall time of the last SIGHUP handled."""
    last_result: str | None = None
    needs_restart: list[str] = field(default_factory=list)
    """Sections changed in the file but not applied until a restart."""


@dataclass
class DaemonState:
    """What the running daemon is doing (read by status and metrics)."""

    sensors: dict[str, SensorLoop] = field(default_factory=dict)
    sensors_not_open: dict[str, str] = field(default_factory=dict)
    guards: dict[str, HealthGuard] = field(default_factory=dict)
    outbox: Outbox | None = None
    writer: OutboxWriter | None = None
    forwarder: Forwarder | None = None
    run_state: RunState = "starting"
    started_wall: float = field(default_factory=time.time)
    started_mono: float = field(default_factory=time.monotonic)
    stalls: list[Stall] = field(default_factory=list)
    reloads: ReloadRecord = field(default_factory=ReloadRecord)
    metrics_url: str | None = None
    alarms: AlarmBook | None = None
    commands: CommandStats | None = None
    """Remote commands answered (None: the uplink has not started)."""
