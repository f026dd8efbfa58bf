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

from edge_cloud.auth import operators, registry, revocation
from edge_cloud.auth.cli_operators import operators_app
from edge_cloud.auth.cli_options import ConfigOption
from edge_cloud.auth.errors import AuthServiceError
from edge_cloud.auth.registry import Actor
from edge_cloud.auth.service import AuthService, open_service
from edge_cloud.auth.settings import DEFAULT_CONFIG_PATH, AuthSettings, load_auth_settings
from edge_cloud.common.errors import EX_CONFIG, ConfigError
from edge_cloud.common.jwt_verify import SCOPES

app = typer.Typer(
    name="edge-auth",
    help="The edge-agent auth service: operators, tokens, device enrollment, broker security files.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console()
err_console = Console(stderr=True, soft_wrap=True)

CLI_ACTOR = Actor("cli")


def _settings(path: Path | None) -> AuthSettings:
    if path is None and DEFAULT_CONFIG_PATH.exists():
        path = DEFAULT_CONFIG_PATH
    try:
        return load_auth_settings(path)
    except ConfigError as exc:
        _config_exit(exc)


def _config_exit(exc: ConfigError) -> NoReturn:
    count = len(exc.problems)
    err_console.print(f"[bold red]configuration invalid[/] ({count} problem{'s' if count != 1 else ''}):")
    for problem in exc.problems:
        err_console.print(Text.assemble(("  ✗ ", "red"), str(problem)), highlight=False)
    raise typer.Exit(EX_CONFIG)


@contextmanager
def _service(path: Path | None, *, reconcile: bool = False) -> Iterator[AuthService]:
    service = open_service(_settings(path), reconcile=reconcile)
    try:
        yield service
    except AuthServiceError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from exc
    finally:
        service.close()


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
    service = open_service(settings)
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
def revoke_device(device_id: str, config: ConfigOption = None) -> None:
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


@app.command("broker-config")
def broker_config(
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for the Mosquitto files [default: broker.out_dir]")
    ] = None,
    reload: Annotated[
        bool, typer.Option(help="SIGHUP the broker named by broker.pid_file afterwards")
    ] = True,
    config: ConfigOption = None,
) -> None:
    """Write the Mosquitto files (conf, ACL, password file, CRL, CA, server certificate) atomically."""
    settings = _settings(config)
    if out is not None:
        settings = settings.model_copy(
            update={"broker": settings.broker.model_copy(update={"out_dir": out.resolve()})}
        )
    service = open_service(settings, reconcile=False)
    try:
        result = service.broker.apply(signal_broker=reload)
    except AuthServiceError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from exc
    finally:
        service.close()
    for path in result.written:
        console.print(f"wrote {path}", highlight=False)
    if result.signalled_pid:
        console.print(f"broker (pid {result.signalled_pid}) reloaded")


@app.command("rotate-signing-key")
def rotate_signing_key(config: ConfigOption = None) -> None:
    """A new token signing key; the old ones stay in the JWKS (delete their files later)."""
    with _service(config) as service:
        kid = service.rotate_signing_key()
    console.print(f"new signing key {kid}; restart edge-auth serve to sign with it")


@app.command("service-cert")
def service_cert(
    out: Annotated[
        Path, typer.Option("--out", help="Folder for <name>.key, <name>.pem, ca.pem and <name>.share-group")
    ],
    name: Annotated[str | None, typer.Option(help="Certificate CN [default: broker.ingest_identity]")] = None,
    config: ConfigOption = None,
) -> None:
    """A client certificate (service CA) for a cloud service, the ingest: one for all its processes."""
    from edge_cloud.auth.service_identity import service_client_id, share_group, write_service_identity

    with _service(config) as service:
        cn = name or service.settings.broker.ingest_identity
        paths = write_service_identity(service, out, cn)
        group = share_group(service, cn)
        b = service.settings.broker
    host = b.host if b.service_bind_address in ("0.0.0.0", "::") else b.service_bind_address
    for path in paths:
        console.print(f"wrote {path}", highlight=False)
    # What every process needs, so that running N of them is a matter of N instance names.
    # Plain print: a wrapped group name or id would be copied wrong.
    print(
        "every process of the service:\n"
        f"  broker       {host}:{b.service_port} (the service listener), MQTT v5 over TLS; verify it with ca.pem\n"
        f"  certificate  {cn}.pem and {cn}.key, the same for every process\n"
        f"  client id    {service_client_id(cn, '1')}, {service_client_id(cn, '2')}, … (<CN>@<instance>): "
        "unique among the running processes, the same across one process's restarts\n"
        f"  share group  {group} ($share/{group}/devices/+/events; in {cn}.share-group: keep it from devices)\n"
        "the rules: docs/CLOUD_AUTH.md"
    )


app.add_typer(operators_app(_service), name="operators")


def main() -> None:
    app()
