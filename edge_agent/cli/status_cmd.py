"""``edge-agent status [--json]``: what the running daemon is doing, asked of the daemon itself."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

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


REPOSITORY_CONFIG = Path("config") / "edge-agent.toml"
"""What ``make run`` starts the daemon with, in a checkout of the source."""


@dataclass(frozen=True)
class _Candidate:
    config: Path
    state_dir: Path
    invalid: ConfigError | None

    @property
    def socket(self) -> Path:
        return status_socket(self.state_dir)


def _candidate(config: Path) -> _Candidate:
    # Only the state directory is needed: a file broken since the daemon started (a
    # rejected reload) must not hide the daemon that still runs the last valid one.
    try:
        return _Candidate(config, load_settings(config).storage.state_dir, None)
    except ConfigError as exc:
        return _Candidate(config, state_dir_of(config), exc)


def _candidates(config: Path, chosen: bool) -> list[_Candidate]:
    """The config given (``--config`` or ``EDGE_CONFIG``); else the installed one, then the
    source tree's (a daemon from ``make run``) when the current folder has one."""
    found = [_candidate(config)]
    if not chosen and REPOSITORY_CONFIG.is_file() and REPOSITORY_CONFIG.resolve() != config.resolve():
        found.append(_candidate(REPOSITORY_CONFIG))
    return found


def status(
    ctx: typer.Context,
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[
        bool, typer.Option("--json", help="The daemon's full snapshot as JSON (also when it is not running).")
    ] = False,
) -> None:
    """Show the running daemon's sensors, outbox, uplink and clock (exit 3 if it is not running).

    Without --config it asks the installed daemon, then one started from config/edge-agent.toml
    in the current folder (make run).
    """
    source = ctx.get_parameter_source("config")
    tried = _candidates(config, chosen=source is not None and source.name != "DEFAULT")
    answered: tuple[_Candidate, dict[str, Any]] | None = None
    reasons: list[str] = []
    for candidate in tried:
        try:
            answered = candidate, read_status(candidate.socket)
            break
        except StatusUnavailable as exc:
            reasons.append(str(exc))
    if answered is None:
        _not_running(tried, reasons, as_json)
    found, snap = answered
    if found.invalid is not None and found.config.exists():
        n = len(found.invalid.problems)
        err_console.print(
            f"[yellow]note:[/] {found.config} is invalid now ({n} problem{'' if n == 1 else 's'}; "
            f"edge-agent config check --config {found.config}); the daemon keeps running its last valid "
            "configuration and would not start again with this file"
        )
    if as_json:
        typer.echo(json.dumps(snap, indent=2))
        return
    render(snap)


def _not_running(tried: list[_Candidate], reasons: list[str], as_json: bool) -> NoReturn:
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "running": False,
                    "tried": [
                        {"config": str(c.config), "socket": str(c.socket), "problem": reason}
                        for c, reason in zip(tried, reasons, strict=True)
                    ],
                },
                indent=2,
            )
        )
        raise typer.Exit(EX_NOT_RUNNING)
    err_console.print("[red]edge-agent is not running[/]; asked:")
    for c, reason in zip(tried, reasons, strict=True):
        missing = "" if c.config.exists() else ", which does not exist"
        said = "nothing answers" if reason.startswith("edge-agent is not running") else reason
        err_console.print(
            f"  {escape(str(c.socket))}: {escape(said)} (the state dir of {escape(str(c.config))}{missing})",
            highlight=False,
        )
    first = tried[0]
    if first.invalid is not None and first.config.exists():
        report_config_error(first.invalid)  # most likely why it is not running (exit 78)
    err_console.print(
        "another daemon: edge-agent status --config FILE (or EDGE_CONFIG=FILE); "
        "start one: sudo systemctl start edge-agent, or edge-agent run --config FILE"
    )
    raise typer.Exit(EX_NOT_RUNNING)


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
        # .get: a daemon of an older version does not report drops.
        dropped = sum(o.get("dropped_events", {}).values())
        console.print(
            f"[bold]outbox[/]  {o['pending_events']} events pending ({o['pending_bytes']:,} of "
            f"{o['max_bytes']:,} bytes), next seq {o['next_seq']}, {evicted} evicted, "
            f"{o.get('exported_events', 0)} exported, {dropped} never committed — {e(o['path'])}"
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
    if (c := snap.get("commands")) is not None and c["received"]:
        outcomes = ", ".join(f"{n} {outcome}" for outcome, n in c["by_outcome"].items() if n)
        line = f"[bold]remote[/]  {c['received']} commands received: {e(outcomes or 'none answered yet')}"
        if c["replies_lost"]:
            line += f"; {c['replies_lost']} replies lost"
        console.print(line)
    for a in snap.get("alarms", []):
        about = a.get("test") or a["code"]
        console.print(
            f"[bold red]alarm[/]   {e(about)} on {e(str(a['sensor']))} open {_age(a['open_s']).removesuffix(' ago')}"
            f" — {e(a['detail'])}"
        )
    clock = snap["clock"]
    console.print(f"[bold]clock[/]   {e(clock['state'])} (check: {e(clock['check'])})")
    if snap["watchdog"]["stalled"]:
        console.print(f"[bold red]stalled[/] {e('; '.join(snap['watchdog']['stalled']))}")
    r = snap["reloads"]
    if r["count"]:
        console.print(f"[bold]reload[/]  {r['count']} (last: {e(str(r['last_result']))})")
        if r["needs_restart"]:
            console.print(f"         changed but waiting for a restart: {e(', '.join(r['needs_restart']))}")
