"""The device's enrolled identity in its state directory.

``edge-agent enroll`` (``edge_agent.identity.enroll``) writes, in ``<state_dir>/identity/``::

    device.key        the private key, made on the device, mode 0600 (it never leaves)
    device.pem        the client certificate the auth service signed (CN = device id)
    ca.pem            the auth service's CA: verifies the broker
    password          password mode only (no device.key/device.pem): the broker password, 0600
    enrollment.json   {"device_id", "mode", "auth_url", "broker": {"host", "port"},
                       "not_before", "not_after"}  (certificate validity, Unix seconds)

A renewal writes ``device.key.new`` then ``device.pem.new`` and renames them in that
order; :func:`load_identity` finishes an interrupted swap (both written: roll forward)
or drops a half-written one, so a power cut never pairs a key with the wrong certificate.

The settings use it (``edge_agent.settings.enrolled``: ``[mqtt.tls]`` from these files
when the config is silent); this module knows nothing of them, and reads files only (no
cryptography import), so loading settings stays light.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

IDENTITY_DIR = "identity"
KEY_FILE = "device.key"
CERT_FILE = "device.pem"
CA_FILE = "ca.pem"
INFO_FILE = "enrollment.json"
PASSWORD_FILE = "password"
NEW = ".new"


@dataclass(frozen=True)
class EnrolledIdentity:
    directory: Path
    device_id: str
    mode: str  # "cert" | "password"
    auth_url: str
    broker_host: str
    broker_port: int
    not_after: int | None
    not_before: int | None = None  # absent in files written before it was recorded

    @property
    def key(self) -> Path:
        return self.directory / KEY_FILE

    @property
    def cert(self) -> Path:
        return self.directory / CERT_FILE

    @property
    def ca(self) -> Path:
        return self.directory / CA_FILE

    @property
    def password_file(self) -> Path:
        return self.directory / PASSWORD_FILE


def identity_dir(state_dir: Path) -> Path:
    return state_dir / IDENTITY_DIR


def finish_pending_swap(folder: Path) -> None:
    """Complete or undo a renewal interrupted between writing and renaming its files."""
    key_new, cert_new = folder / (KEY_FILE + NEW), folder / (CERT_FILE + NEW)
    if cert_new.exists():  # written after the key: the new pair is complete
        if key_new.exists():
            key_new.replace(folder / KEY_FILE)
        cert_new.replace(folder / CERT_FILE)
    elif key_new.exists():
        key_new.unlink()


def load_identity(state_dir: Path) -> EnrolledIdentity | None:
    """The enrolled identity, or None if this device has not enrolled (or the files are incomplete)."""
    folder = identity_dir(state_dir)
    try:
        finish_pending_swap(folder)
        info = json.loads((folder / INFO_FILE).read_text())
        identity = EnrolledIdentity(
            directory=folder,
            device_id=str(info["device_id"]),
            mode=str(info.get("mode", "cert")),
            auth_url=str(info["auth_url"]),
            broker_host=str(info["broker"]["host"]),
            broker_port=int(info["broker"]["port"]),
            not_after=_int_or_none(info.get("not_after")),
            not_before=_int_or_none(info.get("not_before")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    needed = (
        (identity.ca, identity.password_file)
        if identity.mode == "password"
        else (identity.key, identity.cert, identity.ca)
    )
    if not all(p.is_file() for p in needed):
        return None
    return identity


def _int_or_none(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]
