"""``edge-agent config check``: validate a configuration file and say what is wrong."""

from __future__ import annotations

import typer

from edge_agent.cli.common import DEFAULT_CONFIG, ConfigOption, console, load_config

app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)


@app.command("check")
def check(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Validate the config; print every problem with its file and field; exit 78 if invalid."""
    settings = load_config(config)
    console.print(
        f"[green]✓[/] {config}: valid — device [bold]{settings.device.id}[/], {len(settings.sensors)} sensors"
    )
    if settings.sensors:
        from rich.table import Table

        table = Table("sensor", "driver", "where", "interval", "enabled")
        for s in settings.sensors:
            where = f"bus {s.bus} @ 0x{s.address:02x}" if s.address is not None else f"{s.port}"
            table.add_row(s.name, s.driver, where, f"{s.interval:g} s", "yes" if s.enabled else "no")
        console.print(table)
