"""Certificates for the cloud's own MQTT clients (the ingest): key made here, CN = service name.

They are signed by the service CA, not the device CA: the broker's service listener
trusts only the service CA and lets its clients choose their client ids (N ingest
processes, one id each), while the device listeners trust only the device CA and force
the client id to the CN.  So a service certificate does not work on a device listener,
and a device certificate does not work on the service listener.

One certificate serves every process of a service; each process tells itself apart by
its client id, ``<CN>@<instance>`` (:func:`service_client_id`; the rules are in
docs/CLOUD_AUTH.md).

The processes split the events with a shared subscription, ``$share/<group>/…``, and the
group name is a secret (:func:`share_group`).  Mosquitto 2.0's ACL file cannot refuse a
SUBSCRIBE, only filter deliveries, and a member of a group whose delivery the ACL refuses
still uses up its turn: a device that subscribes to ``$share/<group>/devices/+/events``
makes every (N+1)-th event vanish for the ingest (measured; tests/cloud).  A group name
the devices cannot know is the one lever the broker leaves.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge_cloud.auth import service_certs
from edge_cloud.auth.ca import pem
from edge_cloud.auth.errors import BadRequest
from edge_cloud.auth.service import AuthService
from edge_protocol.files import write_atomic

SERVICE_CERT_LIFETIME = 365 * 86400.0
# The device id alphabet: an ordinal, a host name or a pod name fits.
INSTANCE_PATTERN = r"[A-Za-z0-9_.:-]{1,64}"


def write_service_identity(service: AuthService, out: Path, name: str, *, actor: str = "cli") -> list[Path]:
    """``<name>.key`` (0600), ``<name>.pem``, ``ca.pem`` (the CA of the broker's certificate) and
    ``<name>.share-group`` (0600) in ``out``; the certificate is recorded (``service_certs``)."""
    # The CN is the user name the ACL knows the service by.  Any other name would get the
    # ACL's per-device patterns, i.e. the rights of a device by that name, from a listener
    # where it may also pick that device's client id.
    if name not in service.reserved_ids:
        raise BadRequest(
            f"{name!r} is not a service identity; the ACL knows {', '.join(sorted(service.reserved_ids))}"
        )
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .sign(key, hashes.SHA256())
    )
    now = service.now()
    cert = service.service_ca.sign_device(csr, name, now=now, lifetime=SERVICE_CERT_LIFETIME)
    # Recorded before the key leaves this process: a certificate nobody can list cannot be revoked.
    with service.transaction() as conn:
        service_certs.record_issued(conn, cert, name, now=now, actor=actor)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return [
        write_atomic(out / f"{name}.key", key_pem, mode=0o600),
        write_atomic(out / f"{name}.pem", pem(cert)),
        # The client verifies the broker, whose certificate the device CA issued.
        write_atomic(out / "ca.pem", service.ca.cert_pem),
        write_atomic(out / f"{name}.share-group", share_group(service, name) + "\n", mode=0o600),
    ]


def share_group(service: AuthService, name: str) -> str:
    """The shared-subscription group of service ``name``'s processes, ``<name>-<32 hex digits>``.

    Made once and kept in the state folder, so a renewed certificate comes with the same
    group (a new one would leave the processes' persistent sessions in the old group)."""
    path = service.settings.state_dir / f"{name}.share-group"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    # 128 random bits; the name keeps it readable in the broker's log.  Letters, digits, "_"
    # and "-" only, as the ingest's share_group setting wants.
    readable = re.sub(r"[^A-Za-z0-9_-]", "-", name[:24])
    write_atomic(path, f"{readable}-{secrets.token_hex(16)}\n", mode=0o600)
    return path.read_text().strip()


def service_client_id(name: str, instance: str) -> str:
    """The client id of one process of service ``name``: ``<name>@<instance>``.

    ``@`` is outside the device id alphabet, so the id can never be a device's (on the
    service listener the broker takes the client's word for it: with a device's id it would
    take over that device's session).  ``instance`` must be unique among the processes
    running at once and the same across one process's restarts: the broker keeps that
    session's unacknowledged messages, and its share of a shared subscription, for it.
    """
    if not re.fullmatch(INSTANCE_PATTERN, instance):  # fullmatch: a trailing "\n" does not slip through
        raise BadRequest(f"instance {instance!r} must match {INSTANCE_PATTERN}")
    return f"{name}@{instance}"
