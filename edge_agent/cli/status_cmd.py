"""``edge-agent status [--json]``: what the running daemon is doing, asked of the daemon itself."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from edge_agent.cli.common import (
    DEFAULT_CONFIG,
    ConfigOption,
    console,
    err_console,
    escape,
    report_config_error,
)
from edge_agent.cli.state_dir import state_dir_of
from edge_agent.errors import ConfigError
from edge_agent.service.status_server import StatusUnavailable, read_status, status_socket
from edge_agent.settings import load_settings

EX_NOT_RUNNING = 3
"""LSB init-script convention for "program is not running" (as ``systemctl status``)."""

HEALTH_STYLE = {"ok": "green", "degraded": "yellow", "recovering": "cyan", "failed": "bold red"}


def status(
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="The daemon's full snapshot as JSON.")] = False,
) -> None:
    """Show the running daemon's sensors, outbox, uplink and clock (exit 3 if it is not running)."""
    # Only the state directory is needed: a file broken since the daemon started (a
    # rejected reload) must not hide the daemon that still runs the last valid one.
    invalid: ConfigError | None = None
    try:
        state_dir = load_settings(config).storage.state_dir
    except ConfigError as exc:
        invalid, state_dir = exc, state_dir_of(config)
    try:
        snap = read_status(status_socket(state_dir))
    except StatusUnavailable as exc:
        err_console.print(f"[red]{exc}[/]")
        if invalid is not None:
            report_config_error(invalid)  # most likely why it is not running (exit 78)
        err_console.print("start it with: sudo systemctl start edge-agent  (or: edge-agent run --config …)")
        raise typer.Exit(EX_NOT_RUNNING) from exc
    if invalid is not None:
        err_console.print(
            f"[yellow]note:[/] {config} is invalid now ({len(invalid.problems)} problem(s); "
            f"edge-agent config check --config {config}); the daemon keeps running its last valid "
            "configuration and would not start again with this file"
        )
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
    from rich.table import Table

    # Every string from the daemon is escaped: an error text such as "[/dev/ttyUSB0]" is
    # not rich markup (unescaped, it made the whole command fail with a MarkupError).
    e = escape
    uptime = snap["uptime_s"]
    console.print(
        f"[bold]edge-agent {e(snap['version'])}[/] device [bold]{e(snap['device_id'])}[/] — "
        f"{e(snap['state'])}, pid {snap['pid']}, up {_age(uptime).removesuffix(' ago')}, "
        f"config {e(str(snap['config']))}"
    )
    table = Table(title="sensors", title_justify="left")
    for column in ("sensor", "driver", "health", "last reading", "reads", "errors"):
        table.add_column(column, justify="right" if column in ("reads", "errors") else "left")
    problems: list[str] = []
    for s in snap["sensors"]:
        style = HEALTH_STYLE.get(s["health"], "white")
        health = s["health"]
        if s.get("next_probe_s") is not None:
            health += f" (probe in {s['next_probe_s']:.0f} s)"
        table.add_row(
            e(s["name"]),
            e(s["driver"]),
            f"[{style}]{e(health)}[/]",
            _age(s["last_reading_age_s"]),
            str(s["reads"]),
            str(s["errors"]),
        )
        # Under the table, full width: an error text wrapped in a narrow column is unreadable.
        if s.get("reason") and (s["health"] != "ok" or not s.get("open", True)):
            problems.append(f"  [{style}]{e(s['name'])}[/]: {e(s['reason'])}")
    console.print(table)
    for line in problems:
        console.print(line)
    if (o := snap.get("outbox")) is not None:
        evicted = sum(o["evicted_events"].values())
        console.print(
            f"[bold]outbox[/]  {o['pending_events']} events pending ({o['pending_bytes']:,} of "
            f"{o['max_bytes']:,} bytes), next seq {o['next_seq']}, {evicted} evicted — {e(o['path'])}"
        )
    if (u := snap.get("uplink")) is not None:
        colour = "green" if u["state"] == "connected" else "yellow"
        line = (
            f"[bold]uplink[/]  [{colour}]{e(u['state'])}[/] — broker {e(u['broker'])}, "
            f"delivery {e(u['delivery'])}, {u['acked_events']} events delivered"
        )
        if u["state"] != "connected" and u["last_error"]:
            line += f"; last error: {e(u['last_error'])}"
        console.print(line)
    clock = snap["clock"]
    console.print(f"[bold]clock[/]   {e(clock['state'])} (check: {e(clock['check'])})")
    if snap["watchdog"]["stalled"]:
        console.print(f"[bold red]stalled[/] {e('; '.join(snap['watchdog']['stalled']))}")
    r = snap["reloads"]
    if r["count"]:
        console.print(f"[bold]reload[/]  {r['count']} (last: {e(str(r['last_result']))})")
        if r["needs_restart"]:
            console.print(f"         changed but waiting for a restart: {e(', '.join(r['needs_restart']))}")
