"""Certificates for the cloud's own MQTT clients (the ingest): key made here, CN = service name."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge_cloud.auth.ca import pem
from edge_cloud.auth.service import AuthService
from edge_protocol.files import write_atomic

SERVICE_CERT_LIFETIME = 365 * 86400.0


def write_service_identity(service: AuthService, out: Path, name: str) -> list[Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .sign(key, hashes.SHA256())
    )
    cert = service.ca.sign_device(csr, name, now=service.now(), lifetime=SERVICE_CERT_LIFETIME)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return [
        write_atomic(out / f"{name}.key", key_pem, mode=0o600),
        write_atomic(out / f"{name}.pem", pem(cert)),
        write_atomic(out / "ca.pem", service.ca.cert_pem),
    ]
