"""``edge-agent enroll``: get this device's certificate from the auth service (or renew it)."""

from __future__ import annotations

import datetime as dt
import urllib.parse
from pathlib import Path
from typing import Annotated

import typer

from edge_agent.cli.common import (
    DEFAULT_CONFIG,
    EX_USAGE,
    ConfigOption,
    console,
    err_console,
    load_config,
)


def enroll_command(
    auth_url: Annotated[
        str | None, typer.Option("--auth-url", help="The auth service, e.g. https://auth.example.com")
    ] = None,
    token: Annotated[
        str | None, typer.Option("--token", help="One-time enrollment token, or a batch claim token")
    ] = None,
    device_id: Annotated[
        str | None,
        typer.Option("--device-id", help="Device id to enroll as (default: device.id from the config)"),
    ] = None,
    renew_now: Annotated[
        bool, typer.Option("--renew", help="Renew the current certificate (no token needed)")
    ] = False,
    password_mode: Annotated[
        bool, typer.Option("--password-mode", help="Get a broker password instead of a certificate")
    ] = False,
    auth_ca: Annotated[
        Path | None, typer.Option("--auth-ca", help="CA file for an auth service with a private certificate")
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option("--insecure", help="Allow an http:// auth URL (the token travels unencrypted)"),
    ] = False,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Enroll: make a key on this device (it never leaves), get a certificate for it, and
    store both in the state directory, where the daemon picks them up."""
    if auth_url is not None and _plain_http(auth_url):
        if not insecure:
            err_console.print(
                f"[bold red]error:[/] --auth-url {auth_url} is plain http: anyone on the path could read "
                "the token and enroll as this device; use https://, or pass --insecure on a trusted network",
                highlight=False,
            )
            raise typer.Exit(EX_USAGE)
        err_console.print(
            f"[yellow]warning:[/] --insecure: talking to {auth_url} unencrypted", highlight=False
        )
    # Imported here: cryptography costs ~8 MB of RSS that `edge-agent run` should not carry.
    from edge_agent.identity.enroll import EnrollmentError, HttpClient, enroll, renew

    settings = load_config(config)
    state_dir = settings.storage.state_dir
    try:
        if renew_now:
            identity = renew(state_dir, client=HttpClient(auth_url, auth_ca) if auth_url else None)
        else:
            if not auth_url or not token:
                err_console.print("[bold red]error:[/] --auth-url and --token are required (or --renew)")
                raise typer.Exit(EX_USAGE)
            identity = enroll(
                state_dir,
                auth_url=auth_url,
                token=token,
                device_id=device_id or settings.device.id,
                password_mode=password_mode,
                client=HttpClient(auth_url, auth_ca),
            )
    except EnrollmentError as exc:
        err_console.print(f"[bold red]enrollment failed:[/] {exc}", highlight=False)
        raise typer.Exit(1) from exc
    until = (
        dt.datetime.fromtimestamp(identity.not_after, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        if identity.not_after
        else "-"
    )
    console.print(
        f"enrolled as [bold]{identity.device_id}[/] ({identity.mode}); broker {identity.broker_host}:{identity.broker_port}; "
        f"certificate valid until {until}; files in {identity.directory}",
        highlight=False,
    )
    if identity.device_id != settings.device.id:
        err_console.print(
            f"[yellow]warning:[/] the config says device.id = {settings.device.id!r} but this identity is "
            f"{identity.device_id!r}: set [device] id = {identity.device_id!r} in {config}, or the broker will "
            "refuse every publish",
            highlight=False,
        )


def _plain_http(url: str) -> bool:
    return urllib.parse.urlsplit(url.strip()).scheme.lower() == "http"
