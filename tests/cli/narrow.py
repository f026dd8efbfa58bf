"""Run ``edge-agent`` in-process at 80 columns, as a new user's terminal (or a pipe) would show it."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner, Result

from edge_agent.cli import common
from edge_agent.cli.app import app
from tests.conftest import DEFAULT_CONFIG

WIDTH = 80


def run(*args: str) -> Result:
    """The command's result; rich's consoles are rebuilt so that they see ``COLUMNS=80``."""
    for lazy in (common.console, common.err_console):
        lazy._console = None  # type: ignore[attr-defined]  # built again, at this width
    return CliRunner().invoke(app, list(args), env={"COLUMNS": str(WIDTH), "EDGE_CONFIG": None})


def config_in(tmp_path: Path, text: str | None = None) -> Path:
    """The default config (or ``text``) with its state directory under ``tmp_path``."""
    body = DEFAULT_CONFIG.read_text() if text is None else text
    path = tmp_path / "edge-agent.toml"
    path.write_text(body.replace('state_dir = "../state"', f'state_dir = "{tmp_path / "state"}"'))
    return path


def fits(text: str) -> bool:
    return all(len(line) <= WIDTH for line in text.splitlines())
