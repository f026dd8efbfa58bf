"""One JSON-able picture of the running daemon: what ``edge-agent status`` prints, what
``STATUS=`` summarises and what the metrics are read from.  Built on the event loop."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any

from edge_agent import __version__
from edge_agent.sampling.clock_sync import ClockWatch
from edge_agent.service.state import DaemonState
from edge_agent.settings import Settings

SCHEMA = 1


def _iso(wall: float | None) -> str | None:
    return None if wall is None else datetime.fromtimestamp(wall, UTC).isoformat(timespec="seconds")


def _age(mono: float | None, now: float) -> float | None:
    return None if mono is None else round(now - mono, 3)


def sensors_snapshot(settings: Settings, state: DaemonState, now: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for sensor in settings.sensors:
        if not sensor.enabled:
            continue
        entry: dict[str, Any] = {"name": sensor.name, "driver": sensor.driver, "interval_s": sensor.interval}
        loop = state.sensors.get(sensor.name)
        guard = state.guards.get(sensor.name)
        if loop is None:
            reason = state.sensors_not_open.get(sensor.name)
            entry.update(
                open=False,
                health="failed" if reason else "ok",
                reason=reason or "starting",
                reads=0,
                errors=0,
                errors_by_kind={},
                last_reading_age_s=None,
            )
            out.append(entry)
            continue
        c = loop.counters
        entry.update(
            open=True,
            health=guard.health.state if guard else "ok",
            reason=guard.health.reason if guard else c.last_error,
            consecutive_errors=guard.health.consecutive_errors if guard else None,
            next_probe_s=_round(guard.health.seconds_to_probe()) if guard else None,
            breaker_opened=guard.health.opened_total if guard else 0,
            reads=c.reads,
            errors=c.errors,
            timeouts=c.timeouts,
            skipped_busy=c.skipped_busy,
            skipped_open=c.skipped_open,
            not_ready=c.not_ready,
            errors_by_kind=dict(c.errors_by_kind),
            last_reading_age_s=_age(c.last_ok_mono, now),
            last_error=c.last_error,
            dropped=state.writer.drops.by_sensor.get(sensor.name, 0) if state.writer else 0,
        )
        out.append(entry)
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def daemon_snapshot(
    settings: Settings, state: DaemonState, clock: ClockWatch, *, config_path: str | None = None
) -> dict[str, Any]:
    """Everything ``edge-agent status --json`` prints (schema documented in the README)."""
    now = time.monotonic()
    snap: dict[str, Any] = {
        "schema": SCHEMA,
        "version": __version__,
        "pid": os.getpid(),
        "device_id": settings.device.id,
        "config": config_path,
        "state": state.run_state,
        "started_at": _iso(state.started_wall),
        "uptime_s": round(now - state.started_mono, 1),
        "sensors": sensors_snapshot(settings, state, now),
        "clock": {"check": clock.check, "state": clock.state},
        "watchdog": {"stalled": [str(s) for s in state.stalls]},
        "metrics": state.metrics_url,
        "alarms": state.alarms.summaries() if state.alarms is not None else [],
        "reloads": {
            "count": state.reloads.count,
            "rejected": state.reloads.rejected,
            "last_at": _iso(state.reloads.last_at),
            "last_result": state.reloads.last_result,
            "needs_restart": list(state.reloads.needs_restart),
        },
    }
    outbox = state.outbox
    if outbox is not None:
        snap["outbox"] = {
            "path": str(outbox.path),
            "epoch": outbox.epoch,
            "pending_events": outbox.pending_count,
            "pending_bytes": outbox.pending_bytes,
            "max_bytes": outbox.max_bytes,
            "next_seq": outbox.next_seq,
            "evicted_events": dict(outbox.evicted),
            "exported_events": outbox.exported,
            "queued_for_commit": state.writer.queued if state.writer else 0,
            "gap_events": outbox.gap_events,
            "disk_full_episodes": outbox.disk_full_episodes,
            "disk_full_errors": outbox.disk_full_errors,
            "quarantined": str(outbox.quarantined) if outbox.quarantined else None,
            "quarantines": int(outbox.quarantined is not None),
            "salvaged_events": outbox.salvaged_events,
        }
        if state.writer is not None:
            drops = state.writer.drops
            snap["outbox"] |= {
                "dropped_events": dict(drops.by_reason),
                "dropped_announced": drops.announced,
                "dropped_unannounced": drops.unannounced,
            }
    if state.commands is not None:
        snap["commands"] = state.commands.as_json()
    forwarder = state.forwarder
    if forwarder is not None:
        st = forwarder.stats
        snap["uplink"] = {
            "broker": f"{settings.mqtt.host}:{settings.mqtt.port}",
            "state": st.state,
            "delivery": st.delivery,
            "connected_since": _iso(st.connected_since),
            "connects": st.connects,
            "connect_failures": st.connect_failures,
            "published_events": st.published_events,
            "acked_events": st.acked_events,
            "resent_events": st.resent_events,
            "inflight_batches": st.inflight_batches,
            "last_publish_at": _iso(st.last_publish_at),
            "last_error": st.last_error,
        }
    return snap


def status_line(snap: dict[str, Any]) -> str:
    """The one-line summary for systemd's ``STATUS=``."""
    counts: dict[str, int] = {}
    for sensor in snap["sensors"]:
        counts[sensor["health"]] = counts.get(sensor["health"], 0) + 1
    order = ("ok", "degraded", "recovering", "failed")
    sensors = ", ".join(f"{counts[h]} {h}" for h in order if counts.get(h)) or "none"
    parts = [f"sensors: {sensors}"]
    if "outbox" in snap:
        parts.append(f"pending {snap['outbox']['pending_events']} events")
    if "uplink" in snap:
        parts.append(f"uplink {snap['uplink']['state']}")
    if snap["clock"]["state"] != "synced":
        parts.append("clock unsynced")
    return "; ".join(parts)
