"""What every command shares: the --config option, loading it, and the consoles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from edge_agent.errors import EX_CONFIG, ConfigError
from edge_agent.settings import DEFAULT_CONFIG_PATH, Settings, load_settings

console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # never break an error line in two

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        envvar="EDGE_CONFIG",
        help="TOML configuration file.",
        show_default=True,
    ),
]
DEFAULT_CONFIG = DEFAULT_CONFIG_PATH


def report_config_error(error: ConfigError) -> None:
    count = len(error.problems)
    err_console.print(f"[bold red]configuration invalid[/] ({count} problem{'s' if count != 1 else ''}):")
    for problem in error.problems:
        err_console.print(Text.assemble(("  ✗ ", "red"), str(problem)), highlight=False)


def exit_config_error(error: ConfigError) -> NoReturn:
    report_config_error(error)
    raise typer.Exit(EX_CONFIG)


def load_config(path: Path) -> Settings:
    """Load the config, or print every problem and exit 78 (EX_CONFIG)."""
    try:
        return load_settings(path)
    except ConfigError as exc:
        exit_config_error(exc)
