"""Every help screen at 80 columns: no type labels, no ``{braces}``, nothing left unexplained."""

from __future__ import annotations

from edge_agent.cli.app import app
from tests.cli.narrow import run
from tests.help_screens import check_every_screen


def test_every_help_screen_reads_cleanly_at_80_columns() -> None:
    assert check_every_screen(app, run) > 20


def test_version_on_the_command_line() -> None:
    result = run("--version")
    assert result.exit_code == 0 and result.stdout.startswith("edge-agent ")
