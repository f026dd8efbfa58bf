"""The Ed25519 keys access tokens are signed with, kept as files, published as a JWKS.

``<state_dir>/signing-keys/<kid>.pem`` (mode 0600).  The newest file signs; every file
is published in the JWKS, so tokens signed by a previous key stay valid until they
expire after a rotation (``edge-auth rotate-signing-key``; delete a retired key's file
once ``tokens.access_ttl`` has passed).  The ``kid`` is the RFC 7638 thumbprint.  The
first key is made with a new installation; a folder left without a key is refused, not
silently refilled.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_cloud.auth.errors import StateInvalid
from edge_protocol.files import write_atomic


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private: Ed25519PrivateKey
    mtime: float

    def jwk(self) -> dict[str, Any]:
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": _public_x(self.private),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        }


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _public_x(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _b64(raw)


def thumbprint(key: Ed25519PrivateKey) -> str:
    """RFC 7638: SHA-256 of the canonical JSON of the required members."""
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": _public_x(key)}, separators=(",", ":"), sort_keys=True
    )
    return _b64(hashlib.sha256(canonical.encode()).digest())


class KeyRing:
    """The signing keys in a folder; the newest signs."""

    def __init__(self, directory: Path, *, create: bool = False) -> None:
        """The keys in ``directory``; ``create``: make the first one (a new installation)."""
        self.directory = directory
        self.keys: list[SigningKey] = []
        if create:
            self.rotate()
        else:
            self.reload()

    def reload(self) -> None:
        """Read every key; a folder without one, or a file that is not an Ed25519 key, is
        StateInvalid (a silently made new key would void every token issued)."""
        try:
            # Not glob: it takes an unreadable folder for an empty one ("no signing key").
            paths = sorted(
                p
                for p in (self.directory.iterdir() if self.directory.is_dir() else ())
                if p.suffix == ".pem" and not p.name.startswith(".")
            )
            keys = [self._load(path) for path in paths]
        except OSError as exc:
            raise StateInvalid(f"{self.directory}: cannot read the signing keys: {exc}") from exc
        if not keys:
            raise StateInvalid(
                f"{self.directory}: no signing key (*.pem); restore the folder from the backup, "
                "or make a new key with edge-auth rotate-signing-key (every token issued so far stops working)"
            )
        self.keys = sorted(keys, key=lambda k: k.mtime)

    @staticmethod
    def _load(path: Path) -> SigningKey:
        try:
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError) as exc:
            raise StateInvalid(f"{path}: not a PEM private key without a password ({exc})") from exc
        if not isinstance(private, Ed25519PrivateKey):
            raise StateInvalid(f"{path}: not an Ed25519 key (move it out of the folder)")
        return SigningKey(path.stem, private, path.stat().st_mtime)

    def rotate(self) -> SigningKey:
        """Make a new key; it signs from now on."""
        private = Ed25519PrivateKey.generate()
        kid = thumbprint(private)
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = write_atomic(self.directory / f"{kid}.pem", pem, mode=0o600)
        key = SigningKey(kid, private, os.stat(path).st_mtime)
        self.keys = [*(k for k in self.keys if k.kid != kid), key]
        return key

    @property
    def current(self) -> SigningKey:
        return self.keys[-1]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.jwk() for k in self.keys]}
