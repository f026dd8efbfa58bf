"""``edge-agent status [--json]``: what the running daemon is doing, asked of the daemon itself."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from edge_agent.cli.common import DEFAULT_CONFIG, ConfigOption, console, err_console, load_config
from edge_agent.service.status_server import StatusUnavailable, read_status, status_socket

EX_NOT_RUNNING = 3
"""LSB init-script convention for "program is not running" (as ``systemctl status``)."""

HEALTH_STYLE = {"ok": "green", "degraded": "yellow", "recovering": "cyan", "failed": "bold red"}


def status(
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="The daemon's full snapshot as JSON.")] = False,
) -> None:
    """Show the running daemon's sensors, outbox, uplink and clock (exit 3 if it is not running)."""
    settings = load_config(config)
    path = status_socket(settings.storage.state_dir)
    try:
        snap = read_status(path)
    except StatusUnavailable as exc:
        err_console.print(f"[red]{exc}[/]")
        err_console.print("start it with: sudo systemctl start edge-agent  (or: edge-agent run --config …)")
        raise typer.Exit(EX_NOT_RUNNING) from exc
    if as_json:
        typer.echo(json.dumps(snap, indent=2))
        return
    render(snap)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.1f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def render(snap: dict[str, Any]) -> None:
    uptime = snap["uptime_s"]
    console.print(
        f"[bold]edge-agent {snap['version']}[/] device [bold]{snap['device_id']}[/] — {snap['state']}, "
        f"pid {snap['pid']}, up {_age(uptime).removesuffix(' ago')}, config {snap['config']}"
    )
    table = Table(title="sensors", title_justify="left")
    for column in ("sensor", "driver", "health", "last reading", "reads", "errors", "problem"):
        table.add_column(column, justify="right" if column in ("reads", "errors") else "left")
    for s in snap["sensors"]:
        health = s["health"]
        if s.get("next_probe_s") is not None:
            health += f" (probe in {s['next_probe_s']:.0f} s)"
        table.add_row(
            s["name"],
            s["driver"],
            f"[{HEALTH_STYLE.get(s['health'], 'white')}]{health}[/]",
            _age(s["last_reading_age_s"]),
            str(s["reads"]),
            str(s["errors"]),
            s.get("reason") or "",
        )
    console.print(table)
    if (o := snap.get("outbox")) is not None:
        evicted = sum(o["evicted_events"].values())
        console.print(
            f"[bold]outbox[/]  {o['pending_events']} events pending ({o['pending_bytes']:,} of "
            f"{o['max_bytes']:,} bytes), next seq {o['next_seq']}, {evicted} evicted — {o['path']}"
        )
    if (u := snap.get("uplink")) is not None:
        state = f"[green]{u['state']}[/]" if u["state"] == "connected" else f"[yellow]{u['state']}[/]"
        line = (
            f"[bold]uplink[/]  {state} — broker {u['broker']}, delivery {u['delivery']}, "
            f"{u['acked_events']} events delivered"
        )
        if u["state"] != "connected" and u["last_error"]:
            line += f"; last error: {u['last_error']}"
        console.print(line)
    clock = snap["clock"]
    console.print(f"[bold]clock[/]   {clock['state']} (check: {clock['check']})")
    if snap["watchdog"]["stalled"]:
        console.print(f"[bold red]stalled[/] {'; '.join(snap['watchdog']['stalled'])}")
    r = snap["reloads"]
    if r["count"]:
        console.print(f"[bold]reload[/]  {r['count']} (last: {r['last_result']})")
        if r["needs_restart"]:
            console.print(f"         changed but waiting for a restart: {', '.join(r['needs_restart'])}")
