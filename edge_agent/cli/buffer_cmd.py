"""``edge-agent buffer``: what the outbox holds, carrying it out on a USB stick, salvaging a bad file.

``stats`` and ``export`` open the database read-only, so they are safe while the daemon
runs; ``salvage`` writes into the outbox and needs the daemon stopped (it holds a lock).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from edge_agent.cli.common import DEFAULT_CONFIG, ConfigOption, console, err_console, escape, load_config
from edge_agent.outbox import (
    Outbox,
    OutboxError,
    OutboxLockedError,
    OutboxStats,
    export_pending,
    read_stats,
    salvage,
)
from edge_agent.outbox.recovery import inspect
from edge_agent.outbox.salvage import describe_ranges
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
        ("exported", f"{stats.exported}  (buffer export --mark-exported: carried out, not lost)"),
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
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="JSON-lines file to write (e.g. on a USB stick); an existing file is never replaced.",
            metavar="FILE",
        ),
    ],
    mark_exported: Annotated[
        bool,
        typer.Option(
            "--mark-exported",
            help="Remove the exported events from the outbox (frees its space; the daemon must be "
            "stopped). Only when the file will be imported: the cloud then has the only copy.",
        ),
    ] = False,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Write the pending events as JSON lines, for sites with no uplink at all.

    The events stay pending: the daemon still sends them once it has an uplink.  The
    cloud's import (POST /v1/import) and its live ingest store each event once (by its
    id), so importing the file and the later sending never count an event twice.

    With --mark-exported they leave the outbox once the file is safely written: counted as
    exported in buffer stats (not as evicted: nothing is lost), and announced to the cloud
    by a gap event with reason "exported", so its gaps show them on their way by import.
    """
    if out.is_dir():
        fail_export(f"{out} is a folder: name the file to write, e.g. --out {out / 'events.jsonl'}", 1)
    folder = out.parent
    if not folder.is_dir():
        fail_export(f"cannot export to {out}: the folder {folder} does not exist (is the stick mounted?)", 1)
    settings = load_config(config)
    path = _outbox_path(settings)
    try:
        n = _mark_exported(settings, out) if mark_exported else export_pending(path, out)
    except OutboxLockedError as exc:
        fail_export(
            f"{exc}: stop the daemon first (systemctl stop edge-agent), or export without --mark-exported", 1
        )
    except (FileNotFoundError, OutboxError) as exc:  # no outbox (yet), or it cannot be read
        fail_export(str(exc), 1)
    except OSError as exc:  # the folder is not writable, the stick is full or was pulled out
        fail_export(f"cannot write {out}: {exc.strerror or exc}", 1)
    if n == 0:
        console.print(f"nothing is pending in the outbox: {out} was not written")
    elif mark_exported:
        console.print(
            f"exported {n} pending events to {out} and removed them from the outbox; "
            "import the file into the cloud (they are sent no other way)"
        )
    else:
        console.print(
            f"exported {n} pending events to {out}; they stay pending and are sent when the uplink is back"
        )


def _mark_exported(settings: Settings, out: Path) -> int:
    """The outbox opened for writing (its lock: the daemon stopped), exported and marked."""
    path = _outbox_path(settings)
    if not path.exists():
        raise FileNotFoundError(f"no outbox at {path}")
    # Opening a damaged file moves it aside and starts an empty outbox: the export would
    # then "succeed" with none of the events.  Checked read-only first, so it is left as is.
    if (problem := inspect(path).problem) is not None:
        raise OutboxError(_damaged(path, problem))

    async def go() -> int:
        outbox = await Outbox.open(
            path, max_bytes=settings.storage.max_bytes, max_age_s=settings.storage.max_age, boot=boot_id()
        )
        try:
            if outbox.quarantined is not None:  # damaged between the check and the open
                raise OutboxError(_damaged(path, f"moved to {outbox.quarantined}"))
            return await outbox.mark_exported(out)
        finally:
            await outbox.close()

    return asyncio.run(go())


def _damaged(path: Path, problem: str) -> str:
    return (
        f"the outbox {path} is damaged ({problem}): nothing exported, nothing removed. "
        "Start the daemon (it moves the file aside and starts a new outbox), then recover its "
        "events with `edge-agent buffer salvage <the moved file>` and export again"
    )


def fail_export(message: str, code: int) -> NoReturn:
    err_console.print(f"[red]{escape(message)}[/]", highlight=False)
    raise typer.Exit(code)


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
            console.print(f"[yellow]unreadable old seqs: {describe_ranges(report.unreadable)}[/]")
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
