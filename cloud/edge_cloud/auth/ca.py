"""The service's own certificate authority: device certificates (CN = device id), the
broker's server certificate, and the CRL Mosquitto checks.

``<state_dir>/ca/ca.key`` (EC P-256, mode 0600) and ``ca.pem``, made once for a new
installation (``edge-auth init`` or the first start on an empty state); after that a
missing, unreadable or mismatched file is a refusal to start, never a new CA.
Device certificates carry clientAuth only, the broker's serverAuth only, so neither can
pose as the other.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edge_cloud.auth.errors import BadRequest, StateInvalid
from edge_protocol.files import write_atomic

BACKDATE = dt.timedelta(minutes=5)  # tolerate devices whose clock is a little behind


@dataclass(frozen=True)
class RevokedSerial:
    serial: int
    revoked_at: float


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def load_csr(text: str) -> x509.CertificateSigningRequest:
    """A CSR from PEM, with its self-signature checked and an acceptable key; else BadRequest."""
    try:
        csr = x509.load_pem_x509_csr(text.encode())
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"csr is not a PEM certificate signing request: {exc}") from exc
    try:
        valid = csr.is_signature_valid
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise BadRequest(f"csr signature cannot be checked: {exc}") from exc
    if not valid:
        raise BadRequest("csr signature is invalid (the CSR was not signed by its own key)")
    key = csr.public_key()
    ok = (
        (isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in ("secp256r1", "secp384r1"))
        or isinstance(key, ed25519.Ed25519PublicKey)
        or (isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048)
    )
    if not ok:
        raise BadRequest("csr key must be EC P-256/P-384, Ed25519 or RSA >= 2048 bits")
    return csr


LOST_DEVICE_CA = "restore it from the backup of the state (a new CA would lock out every device)"


def _read_pem(path: Path, lost: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise StateInvalid(f"{path}: missing; {lost}") from exc
    except OSError as exc:
        raise StateInvalid(f"{path}: cannot read it: {exc.strerror or exc}") from exc


class CertificateAuthority:
    """A CA whose ``ca.key`` and ``ca.pem`` exist and match; made once by :meth:`create`."""

    def __init__(self, directory: Path, *, lost: str = LOST_DEVICE_CA) -> None:
        """Load the CA, or StateInvalid naming the file; ``lost``: what to do about a missing one."""
        self.directory = directory
        key_path, cert_path = directory / "ca.key", directory / "ca.pem"
        key_bytes, cert_bytes = _read_pem(key_path, lost), _read_pem(cert_path, lost)
        try:
            loaded = serialization.load_pem_private_key(key_bytes, password=None)
        except (ValueError, TypeError) as exc:
            raise StateInvalid(f"{key_path}: not a PEM private key without a password ({exc})") from exc
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise StateInvalid(f"{key_path}: not an EC private key")
        try:
            cert = x509.load_pem_x509_certificate(cert_bytes)
        except ValueError as exc:
            raise StateInvalid(f"{cert_path}: not a PEM certificate ({exc})") from exc
        if cert.public_key() != loaded.public_key():
            raise StateInvalid(
                f"{cert_path}: does not match {key_path.name} (another CA's certificate?); "
                "restore both from the same backup"
            )
        self.key = loaded
        self.cert = cert

    @staticmethod
    def exists(directory: Path) -> bool:
        """Whether any file of a CA is there (a half CA is not "none": it is refused on load)."""
        return any((directory / name).exists() for name in ("ca.key", "ca.pem"))

    @classmethod
    def create(cls, directory: Path, *, name: str, lifetime: float, now: float) -> CertificateAuthority:
        """A new CA in ``directory`` (which must hold none): only for a new installation."""
        if cls.exists(directory):
            raise StateInvalid(f"{directory}: holds a CA already; it is never replaced")
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_utc(now) - BACKDATE)
            .not_valid_after(_utc(now + lifetime))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        pem_key = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        write_atomic(directory / "ca.key", pem_key, mode=0o600)
        write_atomic(directory / "ca.pem", pem(cert))
        return cls(directory)

    @property
    def cert_pem(self) -> str:
        return pem(self.cert)

    def _builder(
        self, subject: x509.Name, public_key: object, now: float, lifetime: float
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(_utc(now) - BACKDATE)
            .not_valid_after(min(_utc(now + lifetime), self.cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
        )

    def sign_device(
        self, csr: x509.CertificateSigningRequest, device_id: str, *, now: float, lifetime: float
    ) -> x509.Certificate:
        """A client certificate for ``device_id``; whatever subject the CSR asks for is ignored."""
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)])
        return (
            self._builder(subject, csr.public_key(), now, lifetime)
            .add_extension(
                x509.KeyUsage(True, False, True, False, True, False, False, False, False), critical=True
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )

    def sign_server(
        self, names: list[str], *, now: float, lifetime: float
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """The broker's server certificate (and its new key) for ``names`` (DNS names or IPs)."""
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = []
        for name in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "broker")])
        cert = (
            self._builder(subject, key.public_key(), now, lifetime)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(
                x509.KeyUsage(True, False, True, False, True, False, False, False, False), critical=True
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return cert, key

    def issued_by_me(self, cert: x509.Certificate) -> bool:
        try:
            cert.verify_directly_issued_by(self.cert)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True

    def crl(self, revoked: list[RevokedSerial], *, now: float, lifetime: float, number: int) -> str:
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(_utc(now) - BACKDATE)
            .next_update(_utc(now + lifetime))
            .add_extension(x509.CRLNumber(number), critical=False)
        )
        for item in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(item.serial)
                .revocation_date(_utc(item.revoked_at))
                .build()
            )
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()
