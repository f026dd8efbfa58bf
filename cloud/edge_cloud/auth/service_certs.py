"""The service certificates issued (``edge-auth service-cert``), and revoking them.

Each one is a row of ``service_certificates``; a revoked one goes on the service
listener's CRL (``service-crl.pem``, signed by the service CA) and into the
``revoked.json`` record beside it, by the same render that keeps the device CRL
(:mod:`edge_cloud.auth.broker_sync`, :mod:`edge_cloud.auth.revocation_record`).

What a revocation cannot do (Mosquitto 2.0.11, broker_files.py): a CRL plus SIGHUP
refuses the next handshake but leaves a live session up, and the ACL cannot deny the
revoked certificate alone, since its successor has the same CN.  Only a broker restart
cuts such a session (:func:`restart_broker`, when ``broker.restart_command`` says how).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from cryptography import x509
from sqlalchemy.engine import Connection

from edge_cloud.auth import audit
from edge_cloud.auth.ca import fingerprint
from edge_cloud.auth.errors import BadRequest, BrokerSyncError, NotFound
from edge_cloud.auth.tables import service_certificates as table

RESTART_TIMEOUT = 60.0
# What the list prints and an operator pastes back: hex, optionally with colons (openssl's
# "Serial Number" style) or a 0x prefix.  A 159-bit serial is at most 40 digits.
_SERIAL = re.compile(r"(?:0x)?([0-9a-f]{1,40}|[0-9a-f]{2}(?::[0-9a-f]{2}){0,19})", re.IGNORECASE)


@dataclass(frozen=True)
class ServiceCert:
    serial: str  # hex, lower case, no leading zeros: as the list prints it
    name: str
    issued_at: int
    not_after: int
    revoked_at: int | None


def record_issued(conn: Connection, cert: x509.Certificate, name: str, *, now: float, actor: str) -> str:
    """Keep ``cert`` (just signed by the service CA) so that it can be listed and revoked."""
    serial = format(cert.serial_number, "x")
    conn.execute(
        table.insert().values(
            serial=serial,
            name=name,
            fingerprint=fingerprint(cert),
            issued_at=int(now),
            not_after=int(cert.not_valid_after_utc.timestamp()),
        )
    )
    audit.record(conn, at=now, actor=actor, action="service_cert.issued", target=serial, name=name)
    return serial


def list_certs(conn: Connection) -> list[ServiceCert]:
    """Every service certificate, oldest first."""
    rows = conn.execute(sa.select(table).order_by(table.c.issued_at, table.c.serial))
    return [
        ServiceCert(str(r.serial), str(r.name), int(r.issued_at), int(r.not_after), r.revoked_at)
        for r in rows
    ]


def parse_serial(text: str) -> str:
    """A serial as typed (hex, ``0x…`` or ``aa:bb:…``) in the form the list prints; else BadRequest."""
    match = _SERIAL.fullmatch(text.strip())
    if match is None:
        raise BadRequest(
            f"{text!r} is not a certificate serial (hex digits, as edge-auth service-certs prints)"
        )
    return format(int(match.group(1).replace(":", ""), 16), "x")


def select(
    conn: Connection, *, serials: Sequence[str] = (), name: str | None = None, keep: Sequence[str] = ()
) -> list[ServiceCert]:
    """The certificates ``serials`` name (NotFound for one unknown), plus, with ``name``,
    every one of that CN not yet revoked except those in ``keep``."""
    by_serial = {c.serial: c for c in list_certs(conn)}
    unknown = [s for s in [*serials, *keep] if s not in by_serial]
    if unknown:
        raise NotFound(
            f"no service certificate with serial {', '.join(unknown)} (edge-auth service-certs lists them)"
        )
    chosen = {s: by_serial[s] for s in serials}
    if name is not None:
        if not any(c.name == name for c in by_serial.values()):
            raise NotFound(f"no service certificate was issued for {name!r}")
        for cert in by_serial.values():
            if cert.name == name and cert.revoked_at is None and cert.serial not in keep:
                chosen[cert.serial] = cert
    return sorted(chosen.values(), key=lambda c: (c.issued_at, c.serial))


def revoke(conn: Connection, certs: Sequence[ServiceCert], *, now: float, actor: str) -> list[ServiceCert]:
    """Mark ``certs`` revoked (those already revoked stay as they were); returns the ones newly revoked."""
    done = []
    for cert in certs:
        if cert.revoked_at is not None:
            continue
        conn.execute(table.update().where(table.c.serial == cert.serial).values(revoked_at=int(now)))
        audit.record(
            conn, at=now, actor=actor, action="service_cert.revoked", target=cert.serial, name=cert.name
        )
        done.append(cert)
    return done


def restart_broker(command: Sequence[str]) -> None:
    """Run ``broker.restart_command`` (e.g. ``systemctl restart mosquitto``); BrokerSyncError if it fails."""
    try:
        result = subprocess.run(
            list(command), capture_output=True, text=True, timeout=RESTART_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrokerSyncError(f"broker.restart_command {' '.join(command)!r} failed: {exc}") from exc
    if result.returncode != 0:
        said = (result.stderr or result.stdout).strip().splitlines()
        raise BrokerSyncError(
            f"broker.restart_command {' '.join(command)!r} exited with {result.returncode}"
            + (f": {said[-1]}" if said else "")
        )
