"""The ``edge-auth`` command: run the service and do what an operator needs from a shell.

Every command takes ``--config`` (or ``EDGE_AUTH_CONFIG``); a bad configuration prints
every problem with its file/variable and field, and exits 78.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from edge_cloud.auth import installation, operators, registry, revocation
from edge_cloud.auth.broker_sync import BrokerSync
from edge_cloud.auth.cli_operators import operators_app
from edge_cloud.auth.cli_options import ConfigOption
from edge_cloud.auth.cli_service_certs import add_commands as add_service_cert_commands
from edge_cloud.auth.errors import AuthServiceError, BrokerSyncError, StateInvalid, StateUnavailable
from edge_cloud.auth.registry import Actor
from edge_cloud.auth.service import AuthService, open_service
from edge_cloud.auth.settings import DEFAULT_CONFIG_PATH, AuthSettings, load_auth_settings
from edge_cloud.common.errors import EX_CONFIG, ConfigError
from edge_cloud.common.jwt_verify import SCOPES
from edge_protocol import cli_help

app = typer.Typer(
    name="edge-auth",
    help="The edge-agent auth service: operators, tokens, device enrollment, broker security files.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings=cli_help.CONTEXT_SETTINGS,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console()
err_console = Console(stderr=True, soft_wrap=True)

CLI_ACTOR = Actor("cli")


EX_TEMPFAIL = 75  # sysexits.h: try again later (the database is not reachable yet)
EX_USAGE = 2  # a usage mistake: the code Click gives a bad option, as edge-agent does
# The broker's folder not writable or the broker not signallable: the setup, as the state.
EXIT_STATUS: dict[type[AuthServiceError], int] = {
    StateInvalid: EX_CONFIG,
    BrokerSyncError: EX_CONFIG,
    StateUnavailable: EX_TEMPFAIL,
}


def _settings(path: Path | None, *, defaults: bool = False) -> AuthSettings:
    """The configuration; without one found, only ``init`` (``defaults``) may use the
    built-in defaults: any other command would make a new state in /var/lib silently."""
    if path is None and (DEFAULT_CONFIG_PATH.exists() or not defaults):
        path = DEFAULT_CONFIG_PATH
    try:
        return load_auth_settings(path)
    except ConfigError as exc:
        _config_exit(exc)


def _fail(exc: AuthServiceError) -> NoReturn:
    """One line, no traceback; the state and the database get the sysexits codes."""
    err_console.print(Text.assemble(("error: ", "bold red"), str(exc)), highlight=False)
    raise typer.Exit(EXIT_STATUS.get(type(exc), 1)) from exc


def _open(
    settings: AuthSettings,
    *,
    reconcile: bool = True,
    initialise: bool = False,
    new_service_ca: bool = False,
    new_signing_key: bool = False,
) -> AuthService:
    try:
        return open_service(
            settings,
            reconcile=reconcile,
            initialise=initialise,
            new_service_ca=new_service_ca,
            new_signing_key=new_signing_key,
        )
    except AuthServiceError as exc:
        _fail(exc)


def _config_exit(exc: ConfigError) -> NoReturn:
    count = len(exc.problems)
    err_console.print(f"[bold red]configuration invalid[/] ({count} problem{'s' if count != 1 else ''}):")
    for problem in exc.problems:
        err_console.print(Text.assemble(("  ✗ ", "red"), str(problem)), highlight=False)
    raise typer.Exit(EX_CONFIG)


@contextmanager
def _service(
    path: Path | None, *, reconcile: bool = False, new_signing_key: bool = False
) -> Iterator[AuthService]:
    service = _open(_settings(path), reconcile=reconcile, new_signing_key=new_signing_key)
    try:
        yield service
    except AuthServiceError as exc:
        _fail(exc)
    finally:
        service.close()


@app.command()
def init(
    config: ConfigOption = None,
    new_service_ca: Annotated[
        bool,
        typer.Option(
            "--new-service-ca",
            help="On an existing installation: replace the service CA (a leaked ingest key); "
            "then restart Mosquitto and reissue service-cert",
        ),
    ] = False,
) -> None:
    """Make a new installation: database, device CA, service CA, signing key, broker files.

    Refused if any of it exists already (a second CA would lock out every device)."""
    settings = _settings(config, defaults=True)
    service = _open(settings, initialise=not new_service_ca, new_service_ca=new_service_ca)
    service.close()
    if new_service_ca:
        console.print(f"new service CA in {settings.service_ca_dir}; restart Mosquitto, reissue service-cert")
        return
    console.print(
        f"initialised: state in {settings.state_dir} (private: back it up), database "
        f"{installation.database_name(settings)}, broker files in {settings.broker.out_dir}; "
        "next: edge-auth create-admin",
        highlight=False,
    )


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Override server.host")] = None,
    port: Annotated[int | None, typer.Option(help="Override server.port")] = None,
) -> None:
    """Migrate the database, reconcile the broker files, and serve the API (uvicorn)."""
    import uvicorn

    from edge_cloud.auth.api.app import create_app

    settings = _settings(config)
    service = _open(settings)
    try:
        uvicorn.run(
            create_app(service),
            host=host or settings.server.host,
            port=port or settings.server.port,
            log_level=settings.log_level,
            proxy_headers=False,  # client addresses matter for rate limits: see server.trusted_proxies
        )
    finally:
        service.close()


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Bring the database to the newest schema (serve does this too)."""
    from edge_cloud.auth.migrate import current_revision

    with _service(config) as service:
        console.print(f"database at revision {current_revision(service.engine)}")


@app.command("create-admin")
def create_admin(
    username: Annotated[str, typer.Option("--username", "-u", help="Operator user name")] = "admin",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input")
    ] = False,
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help=f"Scopes (repeat); default admin. {', '.join(SCOPES)}")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Create an operator (an administrator unless --scope says otherwise)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif not sys.stdin.isatty():
        # getpass would fall back to echoing the password, with a GetPassWarning.
        err_console.print(
            Text.assemble(
                ("error: ", "bold red"),
                "no terminal to ask for the password on; give it on standard input with --password-stdin",
            ),
            highlight=False,
        )
        raise typer.Exit(EX_USAGE)
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with _service(config) as service, service.transaction() as conn:
        op = operators.create_operator(
            conn,
            username=username,
            password=password,
            scopes=scope or ["admin"],
            now=service.now(),
            actor="cli",
        )
    console.print(f"operator [bold]{op.username}[/] created with scopes {' '.join(op.scopes)}")


@app.command("create-device")
def create_device(
    device_id: Annotated[str, typer.Argument(help="Device id (also its MQTT user name and certificate CN)")],
    description: Annotated[str | None, typer.Option(help="Free text")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    config: ConfigOption = None,
) -> None:
    """Create a device and print its one-time enrollment token."""
    with _service(config) as service, service.transaction() as conn:
        token, expires = registry.create_device(
            conn,
            device_id,
            description=description,
            now=service.now(),
            token_ttl=service.settings.enrollment.token_ttl,
            actor=CLI_ACTOR,
            reserved=service.reserved_ids,
        )
    if as_json:
        print(json.dumps({"device_id": device_id, "enrollment_token": token, "expires_at": expires}))
    else:
        console.print(f"device [bold]{device_id}[/] created; one-time enrollment token (shown once):")
        print(token)


@app.command("claim-token")
def claim_token(
    uses: Annotated[int, typer.Option(help="How many devices may enroll with it")],
    config: ConfigOption = None,
) -> None:
    """A batch claim token for factory images (each device enrolls under its own id)."""
    with _service(config) as service, service.transaction() as conn:
        _id, secret, _expires = registry.create_claim_token(
            conn,
            uses=uses,
            now=service.now(),
            ttl=service.settings.enrollment.claim_token_ttl,
            actor=CLI_ACTOR,
        )
    print(secret)


@app.command("revoke-device")
def revoke_device(
    device_id: Annotated[str, typer.Argument(help="The device to revoke (edge-auth devices lists them).")],
    config: ConfigOption = None,
) -> None:
    """Revoke a device for good: CRL, ACL deny, broker reload."""
    with _service(config) as service:
        with service.transaction() as conn:
            registry.set_status(conn, device_id, "revoked", now=service.now(), actor=CLI_ACTOR)
        result = revocation.cut_off(service, device_id)
    console.print(
        f"device {device_id} revoked; broker {'reloaded' if result.broker_signalled else 'files written (no pid to signal)'}; "
        f"live session {'cut' if result.session_cut else 'not cut (not connected, or broker unreachable)'}"
    )


@app.command("devices")
def list_devices(config: ConfigOption = None) -> None:
    """List the devices."""
    with _service(config) as service, service.engine.connect() as conn:
        table = Table("id", "status", "mode", "certificate until")
        for row in registry.list_devices(conn, limit=100_000):
            cert = registry.current_certificate(conn, str(row.id))
            until = (
                dt.datetime.fromtimestamp(int(cert.not_after), dt.UTC).strftime("%Y-%m-%d") if cert else "-"
            )
            table.add_row(str(row.id), str(row.status), str(row.auth_mode or "-"), until)
    console.print(table)


SNAPSHOT_WARNING = (
    "{out} is a one-off snapshot: edge-auth serve keeps {deployed} up to date and never "
    "this folder, so a broker reading it will not see later revocations"
)


@app.command("broker-config")
def broker_config(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write a one-off snapshot there instead of broker.out_dir (see above)",
        ),
    ] = None,
    reload: Annotated[
        bool, typer.Option(help="SIGHUP the broker named by broker.pid_file afterwards")
    ] = True,
    config: ConfigOption = None,
) -> None:
    """Write the Mosquitto files (conf, ACL, password file, CRL, CA, server certificate) atomically.

    With --out DIR: a ONE-OFF SNAPSHOT; serve never updates DIR, so a broker reading it
    misses every later revocation."""
    settings = _settings(config)
    service = _open(settings, reconcile=False)
    try:
        broker = service.broker
        if out is not None and out.resolve() != settings.broker.out_dir:
            broker = BrokerSync(
                settings, service.engine, service.ca, service.service_ca, out_dir=out.resolve()
            )
        result = broker.apply(signal_broker=reload)
    except AuthServiceError as exc:
        _fail(exc)
    finally:
        service.close()
    for path in result.written:
        console.print(f"wrote {path}", highlight=False)
    if result.signalled_pid:
        console.print(f"broker (pid {result.signalled_pid}) reloaded")
    if broker is not service.broker:
        err_console.print(
            Text.assemble(
                ("warning: ", "bold yellow"),
                SNAPSHOT_WARNING.format(out=out.resolve() if out else "", deployed=settings.broker.out_dir),
            ),
            highlight=False,
        )


@app.command("rotate-signing-key")
def rotate_signing_key(config: ConfigOption = None) -> None:
    """A new token signing key; the old ones stay in the JWKS (delete their files later)."""
    with _service(config, new_signing_key=True) as service:
        kid = service.keys.current.kid
    console.print(f"new signing key {kid}; restart edge-auth serve to sign with it")


add_service_cert_commands(app, _service)
app.add_typer(operators_app(_service), name="operators")


cli_help.add_version_option(app, "edge-auth", "edge-cloud")
cli_help.tidy(app)  # the help screens every edge-* command shares: no type labels, no {braces}


def main() -> None:
    app()
