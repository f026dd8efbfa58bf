"""``edge-auth`` and ``edge-ingest`` help as ``edge-agent``'s: the same rules, from the same
module (edge_protocol.cli_help), at 80 columns; ``--version`` on each."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import typer
from typer.testing import CliRunner, Result

from edge_agent.cli.app import app as agent_app
from edge_cloud.auth.cli import app as auth_app
from edge_cloud.ingest.cli import app as ingest_app
from tests.help_screens import WIDTH, check_every_screen


def _runner(app: typer.Typer) -> Callable[..., Result]:
    def run(*args: str) -> Result:
        return CliRunner().invoke(app, list(args), env={"COLUMNS": str(WIDTH)})

    return run


@pytest.mark.parametrize(("name", "app"), [("edge-auth", auth_app), ("edge-ingest", ingest_app)])
def test_every_help_screen_reads_cleanly_at_80_columns(name: str, app: typer.Typer) -> None:
    assert check_every_screen(app, _runner(app)) > 3


@pytest.mark.parametrize(("name", "app"), [("edge-auth", auth_app), ("edge-ingest", ingest_app)])
def test_version(name: str, app: typer.Typer) -> None:
    result = _runner(app)("--version")
    assert result.exit_code == 0 and result.stdout == f"{name} 0.1.0\n"


@pytest.mark.parametrize(
    ("app", "command"),
    [(auth_app, ["revoke-device"]), (ingest_app, ["db"]), (agent_app, ["buffer", "export"]), (agent_app, [])],
)
def test_dash_h_is_help_on_every_command(app: typer.Typer, command: list[str]) -> None:
    run = _runner(app)
    short, long = run(*command, "-h"), run(*command, "--help")
    assert short.exit_code == long.exit_code == 0 and short.stdout == long.stdout
