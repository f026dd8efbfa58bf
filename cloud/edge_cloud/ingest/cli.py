"""The ``edge-ingest`` command: run the service, check its configuration, migrate, follow a device.

Every command takes ``--config`` (or ``EDGE_INGEST_CONFIG``); a bad configuration prints
every problem with its file/variable and field, and exits 78.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from edge_cloud.common.errors import EX_CONFIG, ConfigError
from edge_cloud.ingest.errors import IngestError
from edge_cloud.ingest.settings import DEFAULT_CONFIG_PATH, IngestSettings, load_ingest_settings
from edge_protocol import cli_help

app = typer.Typer(
    name="edge-ingest",
    help="The edge-agent ingest service: stores what devices publish, once, and acknowledges it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings=cli_help.CONTEXT_SETTINGS,
)
config_app = typer.Typer(help="The configuration.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
console = Console()
err_console = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="EDGE_INGEST_CONFIG",
        metavar="FILE",
        # Parentheses: rich read "[default: …]" as markup and showed nothing of it.
        help=f"TOML configuration file (default: {DEFAULT_CONFIG_PATH} if present)",
    ),
]


def _settings(path: Path | None) -> IngestSettings:
    if path is None and DEFAULT_CONFIG_PATH.exists():
        path = DEFAULT_CONFIG_PATH
    try:
        return load_ingest_settings(path)
    except ConfigError as exc:
        _config_exit(exc)


def _config_exit(exc: ConfigError) -> NoReturn:
    count = len(exc.problems)
    err_console.print(f"[bold red]configuration invalid[/] ({count} problem{'s' if count != 1 else ''}):")
    for problem in exc.problems:
        err_console.print(Text.assemble(("  ✗ ", "red"), str(problem)), highlight=False)
    raise typer.Exit(EX_CONFIG)


def _logging(settings: IngestSettings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Override server.host")] = None,
    port: Annotated[int | None, typer.Option(help="Override server.port")] = None,
) -> None:
    """Migrate the database, consume from the broker and serve the API, until SIGTERM."""
    from edge_cloud.ingest import serve as serving

    settings = _settings(config)
    _logging(settings)
    try:
        serving.run(settings, host=host, port=port)
    except IngestError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from exc


@config_app.command("check")
def config_check(config: ConfigOption = None) -> None:
    """Validate the configuration; every problem with its file or variable and field."""
    from sqlalchemy.engine import make_url

    settings = _settings(config)
    database = make_url(settings.database_url).render_as_string(hide_password=True)
    mqtt = settings.mqtt
    console.print("[green]configuration valid[/]", highlight=False)
    console.print(f"  database  {database}", highlight=False)
    console.print(
        f"  broker    {mqtt.host}:{mqtt.port}{' (mutual TLS)' if mqtt.tls else ''}, "
        f"$share/{mqtt.share_group}/devices/+/events, receive maximum {mqtt.receive_maximum}",
        highlight=False,
    )
    console.print(
        f"  devices   {settings.consumer.devices}"
        + (f" (asking {settings.auth.api_url})" if settings.consumer.devices == "known" else ""),
        highlight=False,
    )
    console.print(f"  http      {settings.server.host}:{settings.server.port}", highlight=False)


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Bring the database to the newest schema and make the readings partitions due (serve does this too)."""
    import sqlalchemy as sa

    from edge_cloud.ingest import migrate, partitions
    from edge_cloud.ingest.serve import open_database

    settings = _settings(config)
    try:
        engine = open_database(settings)
    except IngestError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from exc
    try:
        migrate.upgrade(engine)
        done = partitions.maintain(
            engine, interval=settings.database.partition_interval, retention_s=settings.database.retention
        )
        console.print(f"database at revision {migrate.current_revision(engine)}", highlight=False)
        if done.created or done.dropped:
            console.print(
                f"readings partitions created: {', '.join(done.created) or 'none'}; "
                f"dropped: {', '.join(done.dropped) or 'none'}",
                highlight=False,
            )
    except sa.exc.SQLAlchemyError as exc:
        err_console.print(f"[bold red]error:[/] {str(exc).splitlines()[0]}", highlight=False)
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()


@app.command()
def tail(
    device_id: Annotated[str, typer.Argument(metavar="DEVICE", help="The device to follow")],
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="Readings shown first")] = 10,
    sensor: Annotated[str | None, typer.Option(help="Only this sensor")] = None,
    quantity: Annotated[str | None, typer.Option(help="Only this quantity (e.g. temperature_c)")] = None,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between polls of the database")] = 1.0,
    follow: Annotated[bool, typer.Option("--follow/--no-follow", "-f/-F", help="Keep following")] = True,
    config: ConfigOption = None,
) -> None:
    """Follow a device's readings as they are stored (Ctrl-C to stop)."""
    import sqlalchemy as sa

    from edge_cloud.common.db import make_engine
    from edge_cloud.ingest import tail as tailing

    settings = _settings(config)
    engine = make_engine(settings.database_url)
    try:
        polls = tailing.follow(
            engine, device_id, backlog=lines, interval=interval, sensor=sensor, quantity=quantity
        )
        for batch in polls:
            tailing.write_lines(batch, sys.stdout)
            if not follow:
                break
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        # The reader went away (| head): nothing more to say, and not to a closed pipe.
        sys.stdout = None
    except sa.exc.SQLAlchemyError as exc:
        err_console.print(f"[bold red]error:[/] {str(exc).splitlines()[0]}", highlight=False)
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()


cli_help.add_version_option(app, "edge-ingest", "edge-cloud")
cli_help.tidy(app)  # the help screens every edge-* command shares: no type labels, no {braces}


def main() -> None:
    app()
