"""The consumer's MQTT client id: unique among running processes, the same after a restart.

Unique, because two processes with one client id take the session from each other.  The
same after a restart, because Mosquitto keeps serving a shared subscription's share to a
member that is away (measured on 2.0.11: a crashed member's session goes on receiving
every n-th message, queued until that client id comes back or the session expires).  A
restarted process must come back as the session it left, or what was queued for it
waits ``mqtt.session_expiry`` and is then dropped.

So unless ``mqtt.client_id`` is set, the id is ``<identity>@<host>-<slot>`` (the broker's rule
for a service process, docs/CLOUD_AUTH.md: ``@`` is outside the device id alphabet, so the
id can never be a device's): the identity
is ``mqtt.username``, or the CN of the client certificate, or ``ingest``; the slot is the
lowest n for which this process can hold an exclusive lock on
``<state_dir>/consumer-slots/<n>.lock``.  The first process on a host is slot 0 and stays
slot 0 across restarts; a second one running beside it is slot 1.  Processes on one host
must share the state directory for this to hold (or set distinct ``mqtt.client_id``).
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from edge_cloud.ingest.errors import BrokerError
from edge_cloud.ingest.settings import MQTTSettings

MAX_SLOTS = 64
DEFAULT_IDENTITY = "ingest"


@dataclass
class ClientId:
    value: str
    lock: IO[bytes] | None = None
    """The slot's lock file, held open for the life of the process."""

    def release(self) -> None:
        if self.lock is not None:
            self.lock.close()
            self.lock = None


def identity(settings: MQTTSettings) -> str:
    """Who the ingest is to the broker: its user name or its certificate's CN."""
    if settings.username:
        return settings.username
    if settings.tls is not None:
        try:
            from cryptography import x509
            from cryptography.x509.oid import NameOID

            cert = x509.load_pem_x509_certificate(settings.tls.cert_file.read_bytes())
            names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            if names:
                return str(names[0].value)
        except (OSError, ValueError):
            pass  # the connection attempt reports an unreadable certificate properly
    return DEFAULT_IDENTITY


def client_id(settings: MQTTSettings, state_dir: Path) -> ClientId:
    """``mqtt.client_id``, or ``<identity>@<host>-<slot>`` holding the slot's lock."""
    if settings.client_id:
        return ClientId(settings.client_id)
    folder = state_dir / "consumer-slots"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BrokerError(f"cannot make {folder} for the client id slots: {exc}") from exc
    # The instance part must fit the broker's rule: [A-Za-z0-9_.:-].
    host = re.sub(r"[^A-Za-z0-9_.:-]", "-", socket.gethostname().split(".")[0])[:40] or "host"
    for slot in range(MAX_SLOTS):
        f = (folder / f"{slot}.lock").open("ab")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        f.truncate(0)
        f.write(f"{os.getpid()}\n".encode())
        f.flush()
        return ClientId(f"{identity(settings)}@{host}-{slot}", f)
    raise BrokerError(f"{MAX_SLOTS} ingest processes already hold a slot in {folder}; set mqtt.client_id")
