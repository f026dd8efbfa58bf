"""``edge-agent status`` prints whatever text the daemon reports, brackets included."""

from __future__ import annotations

from typing import Any

from edge_agent.cli.common import console
from edge_agent.cli.status_cmd import render


def snapshot(reason: str, uplink_error: str) -> dict[str, Any]:
    sensor = {"name": "dust", "driver": "pms5003", "interval_s": 5.0, "reads": 0, "errors": 0}
    return {
        "version": "0.1.0",
        "pid": 1,
        "device_id": "dev-1",
        "config": "/etc/edge-agent/edge-agent.toml",
        "state": "running",
        "uptime_s": 3.0,
        "sensors": [
            {**sensor, "open": False, "health": "failed", "reason": reason, "last_reading_age_s": None},
            {
                **sensor,
                "name": "ok-one",
                "open": True,
                "health": "ok",
                "reason": None,
                "last_reading_age_s": 1.0,
            },
        ],
        "clock": {"check": "kernel", "state": "synced"},
        "watchdog": {"stalled": []},
        "reloads": {"count": 1, "rejected": 1, "last_result": "rejected: [bold]x[/]", "needs_restart": []},
        "outbox": {
            "path": "/var/lib/edge-agent/outbox.db",
            "pending_events": 2,
            "pending_bytes": 100,
            "max_bytes": 1000,
            "next_seq": 3,
            "evicted_events": {"size_cap": 0},
        },
        "uplink": {
            "broker": "[::1]:1883",
            "state": "disconnected",
            "delivery": "broker",
            "acked_events": 0,
            "last_error": uplink_error,
        },
    }


def test_markup_like_text_from_the_daemon_is_printed_as_is() -> None:
    reason = "HardwareOpenError: cannot open [/dev/ttyUSB0]: [red]busy[/red]"
    with console.capture() as captured:
        render(snapshot(reason, "[/] refused"))
    text = captured.get()
    assert " ".join(text.split()).count(reason) == 1, text
    assert "[/] refused" in text and "[::1]:1883" in text and "rejected: [bold]x[/]" in text
    assert "ok-one:" not in text, "only sensors with a problem get a problem line"
