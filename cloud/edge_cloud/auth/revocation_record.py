"""What the deployed broker files have revoked, kept beside them, so that a database that
was lost, emptied or restored from a backup older than a revocation never un-revokes.

``<broker dir>/revoked.json``::

    {"version": 1,
     "devices": ["dev-7"],                                   # revoked for good: ACL deny
     "disabled": ["dev-9"],                                  # disabled at the last render
     "serials": {"5f3a…": {"revoked_at": 1764000000, "not_after": 1771776000}}}

Every render of the broker files takes the union of the database's revocations and this
record (a serial leaves it only once its certificate has expired: OpenSSL refuses an
expired certificate anyway), writes the record, and only then the CRL and the ACL it
covers.  The expiry is kept here because a certificate issued after the backup the
database came from is unknown to that database.  A deployed ``crl.pem`` counts too
when there is no record (written by a version without it, or the record lost): its
entries are kept until the CA expires, once its signature by our CA is checked; and the
devices the deployed ACL denies are disabled (a password device has no serial).

At start, :func:`reapply` makes the database agree: a device or certificate the record
says is revoked is revoked there too, a device it says is disabled is disabled, each
audited.  Disabling is undone by enabling, so ``disabled`` is not a union: it is the
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
from edge_cloud.auth.tables import certificates, devices
from edge_protocol.files import write_atomic

RECORD_NAME = "revoked.json"
# A broker whose clock runs a little behind still refuses a certificate that just expired.
EXPIRY_GRACE = 86400.0
RESTORE_ACTOR = "edge-auth (revoked.json)"


@dataclass(frozen=True)
class Revoked:
    revoked_at: float
    not_after: float


@dataclass
class RevocationRecord:
    serials: dict[int, Revoked] = field(default_factory=dict)
    devices: set[str] = field(default_factory=set)
    disabled: set[str] = field(default_factory=set)

    def add(self, serial: int, revoked: Revoked) -> None:
        old = self.serials.get(serial)
        # The earliest revocation and the latest expiry: never a shorter entry.
        if old is not None:
            revoked = Revoked(min(old.revoked_at, revoked.revoked_at), max(old.not_after, revoked.not_after))
        self.serials[serial] = revoked

    def union(self, other: RevocationRecord) -> RevocationRecord:
        """Both revocations; ``disabled`` is this record's (the database's)."""
        out = RevocationRecord(dict(self.serials), set(self.devices) | other.devices, set(self.disabled))
        for serial, revoked in other.serials.items():
            out.add(serial, revoked)
        return out

    def current(self, now: float) -> RevocationRecord:
        """Without the serials whose certificates have expired (with a day's grace)."""
        kept = {s: r for s, r in self.serials.items() if r.not_after + EXPIRY_GRACE > now}
        return RevocationRecord(kept, set(self.devices), set(self.disabled))

    def crl_entries(self) -> list[RevokedSerial]:
        return [RevokedSerial(s, r.revoked_at) for s, r in sorted(self.serials.items())]

    def to_json(self) -> str:
        body: dict[str, Any] = {
            "version": 1,
            "devices": sorted(self.devices),
            "disabled": sorted(self.disabled),
            "serials": {
                format(s, "x"): {"revoked_at": int(r.revoked_at), "not_after": int(r.not_after)}
                for s, r in sorted(self.serials.items())
            },
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
    return record


def read_deployed(directory: Path, ca: CertificateAuthority) -> RevocationRecord:
    """The record in the broker folder, else its CRL's entries (either may be absent), or
    StateInvalid.  The record is written before every CRL, so once it exists it holds
    every entry of the CRL beside it; reading the CRL only without one (written by a
    version before the record, or the record lost) saves parsing thousands of entries."""
    if (directory / RECORD_NAME).exists():
        return _read_record(directory / RECORD_NAME)
    # A password device has no serial: the ACL's deny keeps it out.  Revoked or disabled,
    # the ACL does not say: disabled is the safe guess an operator can undo.
    record = RevocationRecord(disabled=_denied_in_acl(directory / "acl"))
    crl_path = directory / "crl.pem"
    try:
        crl = x509.load_pem_x509_crl(crl_path.read_bytes())
    except FileNotFoundError:
        return record
    except (OSError, ValueError) as exc:
        raise StateInvalid(
            f"{crl_path}: not a readable PEM CRL ({exc}); restore it from the broker host"
        ) from exc
    if not crl.is_signature_valid(ca.key.public_key()):
        raise StateInvalid(
            f"{crl_path}: not signed by the CA in {ca.directory / 'ca.pem'}; "
            "restore the CA or the CRL that belong together"
        )
    until = ca.cert.not_valid_after_utc.timestamp()  # no certificate of ours outlives its CA
    for entry in crl:
        if entry.serial_number not in record.serials:
            record.add(entry.serial_number, Revoked(entry.revocation_date_utc.timestamp(), until))
    return record


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
            {
                int(s, 16): Revoked(float(r["revoked_at"]), float(r["not_after"]))
                for s, r in body["serials"].items()
            },
            {str(d) for d in body["devices"]},
            {str(d) for d in body.get("disabled", [])},
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
    # The certificates not revoked are few (one or two per device), the record may be long.
    unrevoked = conn.execute(sa.select(certificates.c.serial).where(certificates.c.revoked_at.is_(None)))
    for serial in sorted(int(r.serial, 16) for r in unrevoked if int(r.serial, 16) in record.serials):
        conn.execute(
            certificates.update()
            .where(certificates.c.serial == format(serial, "x"))
            .values(revoked_at=int(record.serials[serial].revoked_at))
        )
        audit.record(
            conn, at=now, actor=RESTORE_ACTOR, action="certificate.revoked", target=format(serial, "x")
        )
        changed += 1
    return changed
