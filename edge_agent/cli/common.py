"""What every command shares: the --config option, loading it, and the consoles.

rich is imported only when something is drawn: ``edge-agent run`` (the long-running
daemon) prints through rich only on a fatal error, and importing rich would cost it ~2 MB
of RSS (bench/daemon_footprint.py).  So the consoles here are built on first use, and the
command modules import rich's tables, prompts and live views inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, cast

import typer

from edge_agent.errors import EX_CONFIG, ConfigError
from edge_agent.settings import DEFAULT_CONFIG_PATH, Settings, load_settings

if TYPE_CHECKING:
    from rich.console import Console

EX_USAGE = 2
"""The command was used wrongly (unknown test or sensor, bad value, unsafe option): the code
Click gives an unknown option or a value out of range, so every usage mistake exits alike.
The others: 1 the work failed (a sensor could not be read, a test failed), 3 the daemon
is not running, 69 a sensor test could not run, 78 the configuration is invalid."""


class _LazyConsole:
    """Stands for a rich ``Console(**options)``, which it builds on first use.

    Attributes are forwarded; of the special methods (looked up on the type, so not
    forwarded by ``__getattr__``) a Console has only the context manager, used by ``Live``.
    """

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def _real(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:  # only called for what the proxy itself lacks
        return getattr(self._real(), name)

    def __enter__(self) -> Console:
        return self._real().__enter__()

    def __exit__(self, *exc: object) -> None:
        self._real().__exit__(*exc)


console = cast("Console", _LazyConsole())
err_console = cast("Console", _LazyConsole(stderr=True, soft_wrap=True))  # never break an error line in two


def escape(text: str) -> str:
    """rich's markup escape (``[`` in user text is not a style), importing rich when used."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        envvar="EDGE_CONFIG",
        help="TOML configuration file.",
        show_default=True,
        metavar="FILE",
    ),
]
DEFAULT_CONFIG = DEFAULT_CONFIG_PATH


def report_config_error(error: ConfigError) -> None:
    from rich.text import Text

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
