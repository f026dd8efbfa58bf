"""Rendering Mosquitto's security files from the identities (pure functions: text in, text out).

Mosquitto 2.0.11 facts these rules rest on (measured; re-checked by tests/cloud):

* ``use_identity_as_username true`` makes the certificate CN the user name, and
  ``use_username_as_clientid true`` makes it the client id too, so one device cannot take
  over another's client id (without it any valid user can).
* ``use_username_as_clientid`` is a listener option (``per_listener_settings`` does not
  touch it), but client ids are one namespace across listeners: a client on a listener
  without it that names a device's id takes over that device's session.  So the listener
  where the cloud services choose their client ids (several ingest processes need one
  each) accepts only certificates of a separate service CA: a listener's ``cafile``
  decides whose certificates complete the handshake, and a device certificate fails there
  (as a service certificate fails on the device listener).
* ACL ``pattern`` lines with ``%u`` give each device its own topics; SUBSCRIBE is granted
  for any filter and only delivery is filtered by ``read`` rules.  A shared subscription
  (``$share/<group>/<filter>``) is checked against the same rules and each message goes
  to one member of the group.
* MQTT v5 clients get PUBACK reason 0x87 for a refused publish (3.1.1 gets a silent drop),
  so devices speak v5.  The listener cannot refuse 3.1.1 in 2.0; the ACL holds either way.
* A CRL update plus SIGHUP stops new TLS handshakes but leaves a live session up;
  ``user X`` + ``topic deny #`` in the ACL (or removing X from the password file) plus
  SIGHUP cuts it.  Revocation therefore does all of these.  The service listener has a
  CRL of its own (the service CA's): a revoked service certificate is refused at its next
  handshake, but its live session is cut by nothing short of a broker restart (its
  successor has the same CN, so the ACL cannot deny the old one alone).  A reload does
  not add a ``crlfile`` to a listener already open: after the upgrade that brings it,
  Mosquitto must restart once.
* ``max_packet_size`` disconnects a client that sends a bigger packet.
* ``max_queued_messages`` (default 1,000, per client) drops QoS 1 messages beyond it for
  a client that is behind or offline: at 1,000 devices connecting at once the ingest's
  queue overflowed (measured, bench/fleet.py); end to end nothing is lost, but a dropped
  event waits for the device's ack timeout.
* Refused TLS handshakes and passwords are logged at the error and notice levels, a
  refused publish ("Denied PUBLISH") at debug only, with every packet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HEADER = "# Written by edge-auth from its database; rewritten on every change: do not edit.\n"

LOG_TYPES = ("error", "warning", "notice", "information")
"""Mosquitto's default log types, named: setting any log_type replaces the default set."""

DEVICE_WRITE = (
    "devices/%u/events",
    "devices/%u/status",
    "devices/%u/responses/#",
    # Third-party views (docs/PROTOCOL.md, "Latest values" and "Home Assistant"): one
    # retained message per sensor, one discovery config per (sensor, quantity).
    "devices/%u/sensors/+/state",
    "homeassistant/sensor/%u/+/config",
)
DEVICE_READ = ("devices/%u/acks", "devices/%u/commands/#")
# responses/# also matches devices/X/responses itself, where a device sends its refusals.
INGEST_READ = ("devices/+/events", "devices/+/status", "devices/+/responses/#")
INGEST_WRITE = ("devices/+/acks", "devices/+/commands/#")


@dataclass(frozen=True)
class BrokerLayout:
    """Where the files live (as Mosquitto will read them) and the listeners' parameters."""

    out_dir: Path
    port: int
    bind_address: str
    password_port: int | None
    max_packet_size: int
    service_port: int
    service_bind_address: str
    log_denials: bool = False
    max_queued_messages: int = 1000

    @property
    def conf(self) -> Path:
        return self.out_dir / "edge-devices.conf"

    @property
    def acl(self) -> Path:
        return self.out_dir / "acl"

    @property
    def passwd(self) -> Path:
        return self.out_dir / "passwd"

    @property
    def crl(self) -> Path:
        return self.out_dir / "crl.pem"

    @property
    def service_crl(self) -> Path:
        return self.out_dir / "service-crl.pem"

    @property
    def ca(self) -> Path:
        return self.out_dir / "ca.pem"

    @property
    def service_ca(self) -> Path:
        return self.out_dir / "service-ca.pem"

    @property
    def server_cert(self) -> Path:
        return self.out_dir / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.out_dir / "server.key"


def render_conf(layout: BrokerLayout) -> str:
    lines = [
        HEADER.rstrip("\n"),
        "# Include from mosquitto.conf (Debian: put this folder's path in an include_dir line,",
        "# or copy this file to /etc/mosquitto/conf.d/).  Devices must use MQTT v5.",
        "per_listener_settings false",
        "allow_anonymous false",
        f"acl_file {layout.acl}",
        f"password_file {layout.passwd}",
        f"max_packet_size {layout.max_packet_size}",
        "# Per client: the ingest's queue must hold a fleet's burst (broker.max_queued_messages).",
        f"max_queued_messages {layout.max_queued_messages}",
        "",
        "# Logged (added to mosquitto.conf's own log_type lines, where log_dest sends them):",
        "# refused TLS handshakes (error), refused passwords and cut sessions (notice),",
        "# connections (information).  A refused publish is logged at debug level only.",
        *(f"log_type {t}" for t in LOG_TYPES),
    ]
    if layout.log_denials:
        lines += [
            "# broker.log_denials: 'Denied PUBLISH' lines, and a line for every packet.",
            "log_type debug",
        ]
    lines += [
        "",
        "# Devices: mutual TLS; the certificate CN is the user name and the client id.",
        f"listener {layout.port} {layout.bind_address}",
        f"cafile {layout.ca}",
        f"certfile {layout.server_cert}",
        f"keyfile {layout.server_key}",
        f"crlfile {layout.crl}",
        "tls_version tlsv1.2",
        "require_certificate true",
        "use_identity_as_username true",
        "use_username_as_clientid true",
    ]
    if layout.password_port is not None:
        lines += [
            "",
            "# Devices in password mode (brokers/clients without client certificates):",
            "# server TLS, user name = device id, password from the password file.",
            f"listener {layout.password_port} {layout.bind_address}",
            f"cafile {layout.ca}",
            f"certfile {layout.server_cert}",
            f"keyfile {layout.server_key}",
            "tls_version tlsv1.2",
            "require_certificate false",
            "use_username_as_clientid true",
        ]
    lines += [
        "",
        "# Cloud services (the ingest, N processes): mutual TLS with certificates of the service CA",
        "# only, so no device gets here; the CN is the user name (the ACL), and each process",
        "# chooses its own client id (<CN>@<instance>, docs/CLOUD_AUTH.md).  Restart Mosquitto",
        "# after adding or moving a listener: a reload does not open one.",
        f"listener {layout.service_port} {layout.service_bind_address}",
        f"cafile {layout.service_ca}",
        f"certfile {layout.server_cert}",
        f"keyfile {layout.server_key}",
        f"crlfile {layout.service_crl}",
        "tls_version tlsv1.2",
        "require_certificate true",
        "use_identity_as_username true",
        "use_username_as_clientid false",
    ]
    return "\n".join(lines) + "\n"


def render_acl(*, ingest_identity: str, denied: list[str]) -> str:
    """Every device gets its own topics through ``%u`` patterns; ``denied`` ids get nothing."""
    lines = [
        HEADER.rstrip("\n"),
        "",
        "# Each device: its own topics only (%u = certificate CN or user name).",
    ]
    lines += [f"pattern write {t}" for t in DEVICE_WRITE]
    lines += [f"pattern read {t}" for t in DEVICE_READ]
    lines += [
        "",
        "# The ingest service: reads every device's events, status and command replies, and",
        "# writes acks and commands; nothing else.",
    ]
    lines += [f"user {ingest_identity}"]
    # The patterns above apply to every user name, this one too: no device may have it, so
    # its own tree is nobody's (deny lines win over the patterns, as revocation relies on).
    lines += [f"topic deny devices/{ingest_identity}/#"]
    lines += [f"topic read {t}" for t in INGEST_READ]
    lines += [f"topic write {t}" for t in INGEST_WRITE]
    if denied:
        lines += ["", "# Revoked or disabled devices: nothing at all (a live session is cut on reload)."]
        for device_id in sorted(denied):
            lines += [f"user {device_id}", "topic deny #"]
    return "\n".join(lines) + "\n"


def render_passwd(entries: list[str]) -> str:
    return "".join(f"{e}\n" for e in sorted(entries))
