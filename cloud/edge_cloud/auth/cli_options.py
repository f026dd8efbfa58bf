"""Options every ``edge-auth`` command shares (here so that sub-command modules need not
import ``cli``, which imports them)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edge_cloud.auth.settings import DEFAULT_CONFIG_PATH

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="EDGE_AUTH_CONFIG",
        metavar="FILE",
        # Parentheses: rich read "[default: …]" as markup and showed nothing of it.
        help=f"TOML configuration file (default: {DEFAULT_CONFIG_PATH} if present)",
    ),
]
