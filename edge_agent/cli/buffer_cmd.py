"""``edge-agent buffer``: what the outbox holds, carrying it out on a USB stick, salvaging a bad file.

``stats`` and ``export`` open the database read-only, so they are safe while the daemon
runs; ``salvage`` writes into the outbox and needs the daemon stopped (it holds a lock).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edge_agent.cli.common import DEFAULT_CONFIG, ConfigOption, console, err_console, load_config
from edge_agent.outbox import (
    Outbox,
    OutboxError,
    OutboxLockedError,
    OutboxStats,
    export_pending,
    read_stats,
    salvage,
)
from edge_agent.settings import Settings
from edge_protocol.wire import boot_id

if TYPE_CHECKING:
    from rich.table import Table

app = typer.Typer(help="Inspect, export and salvage the outbox.", no_args_is_help=True)


def _outbox_path(settings: Settings) -> Path:
    return settings.storage.state_dir / settings.storage.outbox_file


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 1024:.1f} KiB"


def _render(stats: OutboxStats) -> Table:
    from rich.table import Table

    table = Table(show_header=False, title=f"outbox {stats.path}")
    last = "never" if stats.last_publish is None else f"{_age(time.time() - stats.last_publish)} ago"
    by_kind = ", ".join(f"{k} {v}" for k, v in sorted(stats.pending_by_kind.items())) or "-"
    rows = [
        ("epoch", stats.epoch),
        ("pending events", f"{stats.pending}  ({by_kind})"),
        ("pending bytes", _mib(stats.pending_bytes)),
        ("on disk", f"{_mib(stats.disk_bytes)}  (db {_mib(stats.db_bytes)}, wal {_mib(stats.wal_bytes)})"),
        (
            "oldest pending",
            f"seq {stats.oldest_seq}, {_age(stats.oldest_age_s)} old" if stats.oldest_seq else "-",
        ),
        ("next seq", str(stats.next_seq)),
        (
            "evicted",
            f"{stats.evicted_total}" + (f"  {stats.evicted_by_reason}" if stats.evicted_total else ""),
        ),
        ("last successful publish", last),
    ]
    for r in stats.evicted_recent[-5:]:
        rows.append(("  evicted range", f"{r.first}–{r.last} ({r.reason})"))
    for key, value in rows:
        table.add_row(key, value)
    return table


@app.command("stats")
def stats_command(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Pending events by kind, bytes on disk, oldest event age, evictions, last publish."""
    path = _outbox_path(load_config(config))
    try:
        stats = read_stats(path)
    except FileNotFoundError:
        err_console.print(f"no outbox at {path} yet: the daemon creates it when it first runs")
        raise typer.Exit(1) from None
    except OutboxError as exc:
        err_console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps(stats.as_dict(), default=str))
    else:
        console.print(_render(stats))


@app.command("export")
def export_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="JSON-lines file to write (e.g. on a USB stick).")],
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Write the pending events as JSON lines, for sites with no uplink at all."""
    path = _outbox_path(load_config(config))
    try:
        n = export_pending(path, out)
    except (FileNotFoundError, OutboxError) as exc:
        err_console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    console.print(f"exported {n} pending events to {out}")


@app.command("salvage")
def salvage_command(
    file: Annotated[Path, typer.Argument(help="A quarantined outbox file (outbox.db.corrupt-…).")],
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Recover what can be read from a quarantined outbox file into the outbox (daemon stopped)."""
    settings = load_config(config)

    async def go() -> None:
        outbox = await Outbox.open(
            _outbox_path(settings),
            max_bytes=settings.storage.max_bytes,
            max_age_s=settings.storage.max_age,
            boot=boot_id(),
        )
        try:
            report = await salvage(file, outbox)
        finally:
            await outbox.close()
        console.print(
            f"salvaged {report.recovered} of {report.rows_read} readable events from {file}"
            + (f" (old epoch {report.old_epoch})" if report.old_epoch else "")
        )
        if report.invalid:
            console.print(f"[yellow]{report.invalid} damaged rows skipped[/]")
        if report.unreadable:
            console.print(f"[yellow]unreadable seq ranges: {report.unreadable}[/]")
        if report.error:
            console.print(f"[yellow]reading stopped early: {report.error}[/]")

    try:
        asyncio.run(go())
    except OutboxLockedError as exc:
        err_console.print(f"[red]{exc}[/] — stop the daemon first (systemctl stop edge-agent)")
        raise typer.Exit(1) from exc
    except (FileNotFoundError, ValueError, OutboxError) as exc:
        err_console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
