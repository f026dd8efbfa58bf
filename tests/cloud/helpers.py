"""Helpers for the auth tests: settings, a manual clock, device keys and CSRs."""

from __future__ import annotations

import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge_cloud.auth.settings import AuthSettings

ADMIN = "admin"
ADMIN_PASSWORD = "correct horse battery staple"


class ManualClock:
    """Wall time that tests move forward; starts at the real time (certificates must be valid now)."""

    def __init__(self) -> None:
        self.t = time.time()

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def make_settings(tmp_path: Path, database_url: str, **broker: object) -> AuthSettings:
    return AuthSettings.model_validate(
        {
            "state_dir": tmp_path / "auth-state",
            "database": {"url": database_url},
            "broker": {"out_dir": tmp_path / "broker", **broker},
            "rate_limit": {"account_failures": 5, "address_failures": 20, "window": 900},
        }
    )


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def csr_pem(key: ec.EllipticCurvePrivateKey, cn: str = "whatever") -> str:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
