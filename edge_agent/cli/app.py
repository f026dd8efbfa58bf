"""The ``edge-agent`` command: daemon and field-technician tools in one CLI."""

from __future__ import annotations

import typer

from edge_agent.cli import buffer_cmd, calibration_cmd, config_cmd, test_cmd
from edge_agent.cli.calibrate_cmd import calibrate
from edge_agent.cli.certificate_cmd import certificate
from edge_agent.cli.drivers_cmd import drivers
from edge_agent.cli.enroll_cmd import enroll_command
from edge_agent.cli.read_cmd import read
from edge_agent.cli.run_cmd import run
from edge_agent.cli.scan_cmd import scan_command
from edge_agent.cli.status_cmd import status
from edge_protocol import cli_help

app = typer.Typer(
    name="edge-agent",
    help="Sensor gateway for field devices: read sensors, buffer every event durably, forward over MQTT.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings=cli_help.CONTEXT_SETTINGS,
    cls=cli_help.Group,
)
app.add_typer(config_cmd.app, name="config", cls=cli_help.Group)
app.add_typer(buffer_cmd.app, name="buffer", cls=cli_help.Group)
app.add_typer(test_cmd.app, name="test", cls=cli_help.Group)
app.add_typer(calibration_cmd.app, name="calibration", cls=cli_help.Group)
calibration_cmd.app.command("certificate")(certificate)
app.command("calibrate")(calibrate)
app.command("run")(run)
app.command("drivers")(drivers)
app.command("scan")(scan_command)
app.command("read")(read)
app.command("enroll")(enroll_command)
app.command("status")(status)
cli_help.tidy(app)


cli_help.add_version_option(app, "edge-agent", "edge-agent")


def main() -> None:
    app()
