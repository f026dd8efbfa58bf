"""``edge-auth service-cert``, ``service-certs`` and ``revoke-service-cert``: the cloud
services' certificates (service CA), issued, listed and revoked from the shell.

Rotating a leaked ingest key: ``service-cert --out DIR`` (a new certificate, the same
share group), deploy it, then ``revoke-service-cert --name ingest --except NEW``
(``--restart-broker`` to cut the sessions still open with the old one).
``cli`` hands over how it opens the service, so that configuration errors and exit
statuses stay the same for every command.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from cryptography import x509
from rich.console import Console
from rich.text import Text

from edge_cloud.auth import service_certs
from edge_cloud.auth.cli_options import ConfigOption
from edge_cloud.auth.errors import BadRequest
from edge_cloud.auth.service import AuthService
from edge_cloud.auth.service_certs import ServiceCert
from edge_cloud.common.errors import EX_CONFIG
from edge_protocol.cli_tables import print_rows

OpenService = Callable[[Path | None], AbstractContextManager[AuthService]]
CLI_ACTOR = "cli"
EX_USAGE = 2  # a usage mistake: the code Click gives a bad option

LIVE_SESSIONS = (
    "a session already open with a revoked certificate stays up until Mosquitto restarts "
    "(its successor has the same CN, so the ACL cannot shut the old one out alone)"
)


def add_commands(app: typer.Typer, open_service: OpenService) -> None:
    console = Console()
    err_console = Console(stderr=True, soft_wrap=True)

    def usage(message: str, code: int = EX_USAGE) -> NoReturn:
        err_console.print(Text.assemble(("error: ", "bold red"), message), highlight=False)
        raise typer.Exit(code)

    @app.command("service-cert")
    def service_cert(
        out: Annotated[
            Path,
            typer.Option("--out", help="Folder for <name>.key, <name>.pem, ca.pem and <name>.share-group"),
        ],
        name: Annotated[
            str | None, typer.Option(help="Certificate CN (default: broker.ingest_identity)")
        ] = None,
        config: ConfigOption = None,
    ) -> None:
        """A client certificate (service CA) for a cloud service, the ingest: one for all its processes."""
        from edge_cloud.auth.service_identity import service_client_id, share_group, write_service_identity

        with open_service(config) as service:
            cn = name or service.settings.broker.ingest_identity
            paths = write_service_identity(service, out, cn, actor=CLI_ACTOR)
            group = share_group(service, cn)
            b = service.settings.broker
        serial = format(x509.load_pem_x509_certificate(paths[1].read_bytes()).serial_number, "x")
        host = b.host if b.service_bind_address in ("0.0.0.0", "::") else b.service_bind_address
        for path in paths:
            console.print(f"wrote {path}", highlight=False)
        # What every process needs, so that running N of them is a matter of N instance names.
        # Plain print: a wrapped group name or id would be copied wrong.
        print(
            f"certificate serial {serial} (edge-auth service-certs lists it)\n"
            "every process of the service:\n"
            f"  broker       {host}:{b.service_port} (the service listener), MQTT v5 over TLS; "
            "verify it with ca.pem\n"
            f"  certificate  {cn}.pem and {cn}.key, the same for every process\n"
            f"  client id    {service_client_id(cn, '1')}, {service_client_id(cn, '2')}, … (<CN>@<instance>): "
            "unique among the running processes, the same across one process's restarts\n"
            f"  share group  {group} ($share/{group}/devices/+/events; in {cn}.share-group: keep it from devices)\n"
            "the rules: docs/CLOUD_AUTH.md"
        )

    @app.command("service-certs")
    def list_service_certs(config: ConfigOption = None) -> None:
        """The service certificates issued: serial, CN, validity, revoked."""
        with open_service(config) as service, service.engine.connect() as conn:
            certs = service_certs.list_certs(conn)
            now = service.now()
        rows = [[c.serial, c.name, _day(c.issued_at), _day(c.not_after), _status(c, now)] for c in certs]
        print_rows(console, "Service certificates", ["serial", "name", "issued", "until", "status"], rows)

    @app.command("revoke-service-cert")
    def revoke_service_cert(
        serials: Annotated[
            list[str] | None,
            typer.Argument(help="Serials to revoke, hex as edge-auth service-certs prints them"),
        ] = None,
        name: Annotated[
            str | None,
            typer.Option("--name", metavar="CN", help="Revoke every certificate of this CN not yet revoked"),
        ] = None,
        keep: Annotated[
            list[str] | None,
            typer.Option(
                "--except",
                metavar="SERIAL",
                help="With --name: keep this one (repeat), e.g. the one just issued",
            ),
        ] = None,
        restart_broker: Annotated[
            bool,
            typer.Option(
                "--restart-broker",
                help="Then run broker.restart_command, which cuts sessions open with a revoked "
                "certificate (every client reconnects)",
            ),
        ] = False,
        config: ConfigOption = None,
    ) -> None:
        """Revoke service certificates: the service listener's CRL, revoked.json, broker reload.

        Rotating a leaked key: issue a new one (service-cert), deploy it, then
        revoke-service-cert --name ingest --except NEW_SERIAL --restart-broker."""
        if keep and name is None:
            usage("--except goes with --name")
        if not serials and name is None:
            usage("name the serials to revoke, or --name CN (with --except SERIAL for the one to keep)")
        try:
            wanted = [service_certs.parse_serial(s) for s in serials or []]
            kept = [service_certs.parse_serial(s) for s in keep or []]
        except BadRequest as exc:
            usage(str(exc))
        with open_service(config) as service:
            command = service.settings.broker.restart_command
            if restart_broker and not command:
                usage(
                    "--restart-broker needs broker.restart_command in the configuration "
                    '(e.g. ["systemctl", "restart", "mosquitto"])',
                    EX_CONFIG,
                )
            with service.transaction() as conn:
                chosen = service_certs.select(conn, serials=wanted, name=name, keep=kept)
                revoked = service_certs.revoke(conn, chosen, now=service.now(), actor=CLI_ACTOR)
            result = service.broker.apply()
            if restart_broker and command:
                service_certs.restart_broker(command)
        done = ", ".join(f"{c.serial} ({c.name})" for c in revoked) or "none"
        already = [c.serial for c in chosen if c not in revoked]
        console.print(
            f"revoked: {done}" + (f"; already revoked: {', '.join(already)}" if already else ""),
            highlight=False,
        )
        reloaded = "reloaded" if result.signalled_pid else "files written (no pid to signal)"
        console.print(
            f"broker {reloaded}: new connections with a revoked certificate are refused", highlight=False
        )
        if restart_broker:
            console.print(
                "broker restarted: sessions open with a revoked certificate are cut", highlight=False
            )
        else:
            console.print(
                f"{LIVE_SESSIONS}: --restart-broker, or restart it yourself (systemctl restart mosquitto)",
                highlight=False,
            )


def _day(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d")


def _status(cert: ServiceCert, now: float) -> str:
    if cert.revoked_at is not None:
        return f"revoked {_day(cert.revoked_at)}"
    return "expired" if cert.not_after <= now else "valid"
