"""The ``edge-agent`` command: daemon and field-technician tools in one CLI."""

from __future__ import annotations

from typing import Annotated

import typer

from edge_agent import __version__
from edge_agent.cli import buffer_cmd, calibration_cmd, config_cmd, test_cmd
from edge_agent.cli.calibrate_cmd import calibrate
from edge_agent.cli.drivers_cmd import drivers
from edge_agent.cli.enroll_cmd import enroll_command
from edge_agent.cli.read_cmd import read
from edge_agent.cli.run_cmd import run
from edge_agent.cli.scan_cmd import scan_command
from edge_agent.cli.status_cmd import status

app = typer.Typer(
    name="edge-agent",
    help="Sensor gateway for field devices: read sensors, buffer every event durably, forward over MQTT.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(config_cmd.app, name="config")
app.add_typer(buffer_cmd.app, name="buffer")
app.add_typer(test_cmd.app, name="test")
app.add_typer(calibration_cmd.app, name="calibration")
app.command("calibrate")(calibrate)
app.command("run")(run)
app.command("drivers")(drivers)
app.command("scan")(scan_command)
app.command("read")(read)
app.command("enroll")(enroll_command)
app.command("status")(status)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edge-agent {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    pass


def main() -> None:
    app()
