"""What the deployed broker files have revoked, kept beside them, so that a database that
was lost, emptied or restored from a backup older than a revocation never un-revokes.

``<broker dir>/revoked.json``::

    {"version": 1,
     "devices": ["dev-7"],                                   # revoked for good: ACL deny
     "disabled": ["dev-9"],                                  # disabled at the last render
     "serials": {"5f3a…": {"revoked_at": 1764000000, "not_after": 1771776000}},
     "service_serials": {"7c01…": {"revoked_at": …, "not_after": …}}}   # the service CA's

``service_serials`` are certificates of the service CA (``edge-auth service-cert``), on the
service listener's CRL (``service-crl.pem``); ``serials`` are the device CA's, on
``crl.pem``.  The two CAs draw serials independently, so they are kept apart.

Every render of the broker files takes the union of the database's revocations and this
record (a serial leaves it only once its certificate has expired: OpenSSL refuses an
expired certificate anyway), writes the record, and only then the CRL and the ACL it
covers.  The expiry is kept here because a certificate issued after the backup the
database came from is unknown to that database.  A deployed ``crl.pem`` counts too
when there is no record (written by a version without it, or the record lost): its
entries are kept until the CA expires, once its signature by our CA is checked (the
service CRL's likewise, by the service CA); and the devices the deployed ACL denies are
disabled (a password device has no serial).

At start, :func:`reapply` makes the database agree: a device or certificate the record
says is revoked is revoked there too, a device it says is disabled is disabled, each
audited (a service certificate too).  Disabling is undone by enabling, so ``disabled`` is not a union: it is the
database's list at the last render (after the start made the database agree).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography import x509
from sqlalchemy.engine import Connection

from edge_cloud.auth import audit, registry
from edge_cloud.auth.ca import CertificateAuthority, RevokedSerial
from edge_cloud.auth.errors import StateInvalid
from edge_cloud.auth.tables import certificates, devices, service_certificates
from edge_protocol.files import write_atomic

RECORD_NAME = "revoked.json"
CRL_NAME = "crl.pem"
SERVICE_CRL_NAME = "service-crl.pem"
# A broker whose clock runs a little behind still refuses a certificate that just expired.
EXPIRY_GRACE = 86400.0
RESTORE_ACTOR = "edge-auth (revoked.json)"


@dataclass(frozen=True)
class Revoked:
    revoked_at: float
    not_after: float


def _add(serials: dict[int, Revoked], serial: int, revoked: Revoked) -> None:
    old = serials.get(serial)
    # The earliest revocation and the latest expiry: never a shorter entry.
    if old is not None:
        revoked = Revoked(min(old.revoked_at, revoked.revoked_at), max(old.not_after, revoked.not_after))
    serials[serial] = revoked


def _merged(a: dict[int, Revoked], b: dict[int, Revoked]) -> dict[int, Revoked]:
    out = dict(a)
    for serial, revoked in b.items():
        _add(out, serial, revoked)
    return out


def _unexpired(serials: dict[int, Revoked], now: float) -> dict[int, Revoked]:
    return {s: r for s, r in serials.items() if r.not_after + EXPIRY_GRACE > now}


def _entries(serials: dict[int, Revoked]) -> list[RevokedSerial]:
    return [RevokedSerial(s, r.revoked_at) for s, r in sorted(serials.items())]


def _to_body(serials: dict[int, Revoked]) -> dict[str, dict[str, int]]:
    return {
        format(s, "x"): {"revoked_at": int(r.revoked_at), "not_after": int(r.not_after)}
        for s, r in sorted(serials.items())
    }


def _from_body(body: dict[str, Any]) -> dict[int, Revoked]:
    return {int(s, 16): Revoked(float(r["revoked_at"]), float(r["not_after"])) for s, r in body.items()}


@dataclass
class RevocationRecord:
    serials: dict[int, Revoked] = field(default_factory=dict)
    devices: set[str] = field(default_factory=set)
    disabled: set[str] = field(default_factory=set)
    # The service CA's certificates (the ingest's): the service listener's CRL.
    service_serials: dict[int, Revoked] = field(default_factory=dict)

    def add(self, serial: int, revoked: Revoked) -> None:
        _add(self.serials, serial, revoked)

    def add_service(self, serial: int, revoked: Revoked) -> None:
        _add(self.service_serials, serial, revoked)

    def union(self, other: RevocationRecord) -> RevocationRecord:
        """Both revocations; ``disabled`` is this record's (the database's)."""
        return RevocationRecord(
            _merged(self.serials, other.serials),
            set(self.devices) | other.devices,
            set(self.disabled),
            _merged(self.service_serials, other.service_serials),
        )

    def current(self, now: float) -> RevocationRecord:
        """Without the serials whose certificates have expired (with a day's grace)."""
        return RevocationRecord(
            _unexpired(self.serials, now),
            set(self.devices),
            set(self.disabled),
            _unexpired(self.service_serials, now),
        )

    def crl_entries(self) -> list[RevokedSerial]:
        return _entries(self.serials)

    def service_crl_entries(self) -> list[RevokedSerial]:
        return _entries(self.service_serials)

    def to_json(self) -> str:
        body: dict[str, Any] = {
            "version": 1,
            "devices": sorted(self.devices),
            "disabled": sorted(self.disabled),
            "serials": _to_body(self.serials),
            "service_serials": _to_body(self.service_serials),
        }
        return json.dumps(body, separators=(",", ":")) + "\n"  # no indent: the C encoder, 5x faster


def from_database(conn: Connection) -> RevocationRecord:
    record = RevocationRecord()
    rows = conn.execute(
        sa.select(certificates.c.serial, certificates.c.revoked_at, certificates.c.not_after).where(
            certificates.c.revoked_at.is_not(None)
        )
    )
    for row in rows:
        record.add(int(row.serial, 16), Revoked(float(row.revoked_at), float(row.not_after)))
    query = sa.select(devices.c.id, devices.c.status).where(devices.c.status.in_(("revoked", "disabled")))
    for device in conn.execute(query):
        (record.devices if device.status == "revoked" else record.disabled).add(str(device.id))
    service_query = sa.select(
        service_certificates.c.serial, service_certificates.c.revoked_at, service_certificates.c.not_after
    ).where(service_certificates.c.revoked_at.is_not(None))
    for cert in conn.execute(service_query):
        record.add_service(int(cert.serial, 16), Revoked(float(cert.revoked_at), float(cert.not_after)))
    return record


def read_deployed(
    directory: Path, ca: CertificateAuthority, service_ca: CertificateAuthority | None = None
) -> RevocationRecord:
    """The record in the broker folder, else its CRLs' entries (any may be absent), or
    StateInvalid.  The record is written before every CRL, so once it exists it holds
    every entry of the CRL beside it; reading the CRL only without one (written by a
    version before the record, or the record lost) saves parsing thousands of entries."""
    if (directory / RECORD_NAME).exists():
        return _read_record(directory / RECORD_NAME)
    # A password device has no serial: the ACL's deny keeps it out.  Revoked or disabled,
    # the ACL does not say: disabled is the safe guess an operator can undo.
    record = RevocationRecord(disabled=_denied_in_acl(directory / "acl"))
    record.serials = _read_crl(directory / CRL_NAME, ca)
    if service_ca is not None:
        # Signed by an earlier service CA (init --new-service-ca): it lists certificates the
        # listener no longer trusts at all, so it has nothing to keep.
        record.service_serials = _read_crl(directory / SERVICE_CRL_NAME, service_ca, other_ca_ok=True)
    return record


def _read_crl(crl_path: Path, ca: CertificateAuthority, *, other_ca_ok: bool = False) -> dict[int, Revoked]:
    """A deployed CRL's entries, its signature by ``ca`` checked; none if it is absent."""
    try:
        crl = x509.load_pem_x509_crl(crl_path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise StateInvalid(
            f"{crl_path}: not a readable PEM CRL ({exc}); restore it from the broker host"
        ) from exc
    if not crl.is_signature_valid(ca.key.public_key()):
        if other_ca_ok:
            return {}
        raise StateInvalid(
            f"{crl_path}: not signed by the CA in {ca.directory / 'ca.pem'}; "
            "restore the CA or the CRL that belong together"
        )
    until = ca.cert.not_valid_after_utc.timestamp()  # no certificate of ours outlives its CA
    return {e.serial_number: Revoked(e.revocation_date_utc.timestamp(), until) for e in crl}


def _denied_in_acl(path: Path) -> set[str]:
    """The user names the ACL denies everything (``user X`` then ``topic deny #``)."""
    try:
        lines = [line.strip() for line in path.read_text().splitlines()]
    except FileNotFoundError:
        return set()
    except OSError as exc:
        raise StateInvalid(f"{path}: cannot read it: {exc.strerror or exc}") from exc
    return {
        user.removeprefix("user ").strip()
        for user, rule in itertools.pairwise(lines)
        if user.startswith("user ") and rule == "topic deny #"
    }


def _read_record(path: Path) -> RevocationRecord:
    try:
        body = json.loads(path.read_text())
        return RevocationRecord(
            _from_body(body["serials"]),
            {str(d) for d in body["devices"]},
            {str(d) for d in body.get("disabled", [])},
            # Absent in a record written before service certificates could be revoked.
            _from_body(body.get("service_serials", {})),
        )
    except FileNotFoundError:
        return RevocationRecord()
    except OSError as exc:
        raise StateInvalid(f"{path}: cannot read it: {exc.strerror or exc}") from exc
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StateInvalid(
            f"{path}: not a revocation record ({exc!r}); restore it from a backup of the broker folder"
        ) from exc


def write(directory: Path, record: RevocationRecord) -> Path:
    return write_atomic(directory / RECORD_NAME, record.to_json(), mode=0o644)


def reapply(conn: Connection, record: RevocationRecord, *, now: float) -> int:
    """Revoke in the database what the record says is revoked (a restored, older database
    thinks those devices are active); returns how many rows changed, each one audited."""
    changed = 0
    restorer = registry.Actor(RESTORE_ACTOR)
    for status, ids, was in (
        ("revoked", record.devices, ("pending", "active", "disabled")),
        ("disabled", record.disabled - record.devices, ("pending", "active")),
    ):
        query = sa.select(devices.c.id).where(devices.c.id.in_(sorted(ids)), devices.c.status.in_(was))
        for device_id in sorted(str(r.id) for r in conn.execute(query)):
            registry.set_status(conn, device_id, status, now=now, actor=restorer)
            changed += 1
    changed += _reapply_serials(conn, certificates, record.serials, "certificate.revoked", now=now)
    return changed + _reapply_serials(
        conn, service_certificates, record.service_serials, "service_cert.revoked", now=now
    )


def _reapply_serials(
    conn: Connection, table: sa.Table, revoked: dict[int, Revoked], action: str, *, now: float
) -> int:
    """Revoke in ``table`` (device or service certificates) the serials the record revoked."""
    # The certificates not revoked are few (one or two per device), the record may be long.
    unrevoked = conn.execute(sa.select(table.c.serial).where(table.c.revoked_at.is_(None)))
    changed = 0
    for serial in sorted(int(r.serial, 16) for r in unrevoked if int(r.serial, 16) in revoked):
        conn.execute(
            table.update()
            .where(table.c.serial == format(serial, "x"))
            .values(revoked_at=int(revoked[serial].revoked_at))
        )
        audit.record(conn, at=now, actor=RESTORE_ACTOR, action=action, target=format(serial, "x"))
        changed += 1
    return changed
