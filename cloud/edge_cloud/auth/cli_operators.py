"""``edge-auth operators``: list, disable, enable, delete, set a password.

Create one with ``edge-auth create-admin -u NAME [--scope …]``.  A running ``serve``
refuses a disabled or deleted operator's access tokens within ``tokens.subject_check_ttl``.
``cli`` hands over how it opens the service, so that configuration errors and exit
statuses stay the same for every command.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from edge_cloud.auth import operator_admin
from edge_cloud.auth.cli_options import ConfigOption
from edge_cloud.auth.operator_admin import Ended
from edge_cloud.auth.service import AuthService

OpenService = Callable[[Path | None], AbstractContextManager[AuthService]]
CLI_ACTOR = "cli"

Username = Annotated[str, typer.Argument(help="The operator's user name")]


def operators_app(open_service: OpenService) -> typer.Typer:
    app = typer.Typer(
        help="Operators: list, disable, enable, delete, set a password (create: edge-auth create-admin).",
        no_args_is_help=True,
    )
    console = Console()

    def done(what: str, ended: Ended, service: AuthService, *, keys: bool = True) -> None:
        revoked = f"refresh tokens revoked: {ended.refresh_tokens_revoked}"
        if keys:
            revoked += f"; API keys revoked: {', '.join(ended.api_keys_revoked) or 'none'}"
        ttl = service.settings.tokens.subject_check_ttl
        console.print(
            f"{what}; {revoked}; a running edge-auth serve refuses its access tokens within {ttl:g} s",
            highlight=False,
        )

    @app.command("list")
    def list_operators(config: ConfigOption = None) -> None:
        """The operators, their scopes and whether they are disabled."""
        with open_service(config) as service, service.engine.connect() as conn:
            rows = operator_admin.list_operators(conn)
        table = Table("user name", "scopes", "status", "created")
        for row in rows:
            created = dt.datetime.fromtimestamp(row.created_at, dt.UTC).strftime("%Y-%m-%d")
            table.add_row(row.username, row.scopes, "disabled" if row.disabled else "active", created)
        console.print(table)

    @app.command()
    def disable(username: Username, config: ConfigOption = None) -> None:
        """Refuse its logins and tokens; revoke its refresh tokens and the API keys it issued."""
        with open_service(config) as service:
            with service.transaction() as conn:
                ended = operator_admin.set_disabled(conn, username, True, now=service.now(), actor=CLI_ACTOR)
            done(f"operator {username} disabled", ended, service)

    @app.command()
    def enable(username: Username, config: ConfigOption = None) -> None:
        """Let it log in again (what was revoked stays revoked)."""
        with open_service(config) as service, service.transaction() as conn:
            operator_admin.set_disabled(conn, username, False, now=service.now(), actor=CLI_ACTOR)
        console.print(f"operator {username} enabled", highlight=False)

    @app.command()
    def delete(
        username: Username,
        yes: Annotated[bool, typer.Option("--yes", help="Do not ask")] = False,
        config: ConfigOption = None,
    ) -> None:
        """Remove it with its sessions and the API keys it issued (the audit log keeps its name)."""
        if not yes:
            typer.confirm(f"delete operator {username}?", abort=True)
        with open_service(config) as service:
            with service.transaction() as conn:
                ended = operator_admin.delete(conn, username, now=service.now(), actor=CLI_ACTOR)
            done(f"operator {username} deleted", ended, service)

    @app.command()
    def password(
        username: Username,
        password_stdin: Annotated[
            bool, typer.Option("--password-stdin", help="Read the new password from standard input")
        ] = False,
        config: ConfigOption = None,
    ) -> None:
        """Set a new password (a forgotten one); the operator's sessions end."""
        if password_stdin:
            new = sys.stdin.readline().rstrip("\r\n")
        else:
            new = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
        with open_service(config) as service:
            with service.transaction() as conn:
                ended = operator_admin.set_password(conn, username, new, now=service.now(), actor=CLI_ACTOR)
            done(f"operator {username} has a new password", ended, service, keys=False)

    return app
