"""Cutting a device's live MQTT session at once, by taking over its client id.

Mosquitto 2.0.11 facts (measured here, re-checked by tests/cloud): after SIGHUP a
certificate-authenticated session survives both a CRL update and an ACL ``topic deny #``
(the ACL then refuses its publishes with 0x87, but the session stays up); sessions
authenticated by the password file are cut when the user leaves it.  The broker has no
"kick" outside its dynamic-security plugin.  What it does have: with
``use_username_as_clientid true`` the client id is the certificate CN, and a new session
with the same client id closes the old one (session takeover).

So to cut device X the service, which owns the CA, signs a short-lived certificate with
CN = X for a key that exists only in memory, connects with it (after the reload that
put X's own certificates on the CRL and denied X everything), and disconnects at once.
The live session is closed by the broker; the device's reconnect fails the TLS handshake
(CRL).  The throw-away certificate is then put on the CRL too.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import uuid

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from edge_cloud.auth.ca import CertificateAuthority

log = logging.getLogger(__name__)

KICK_CERT_LIFETIME = 600.0
CONNECT_TIMEOUT = 10.0


def kick_session(
    ca: CertificateAuthority,
    device_id: str,
    *,
    host: str,
    port: int,
    now: float,
    timeout: float = CONNECT_TIMEOUT,
) -> tuple[bool, int]:
    """Take over ``device_id``'s client id once.  Returns (done, serial of the throw-away certificate)."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)]))
        .sign(key, hashes.SHA256())
    )
    cert = ca.sign_device(csr, device_id, now=now, lifetime=KICK_CERT_LIFETIME)
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.check_hostname = False  # the broker's certificate is checked against our own CA; the address is ours
    ctx.load_verify_locations(cadata=ca.cert_pem)
    _load_chain_from_memory(ctx, cert, key)
    done = threading.Event()
    result: dict[str, int] = {}

    def on_connect(_c: object, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        result["rc"] = rc.value
        done.set()

    def on_disconnect(_c: object, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        result.setdefault("rc", rc.value)
        done.set()

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"edge-auth-kick-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
    )
    client.tls_set_context(ctx)
    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    try:
        client.connect(host, port, keepalive=10)
    except (OSError, ssl.SSLError) as exc:
        log.warning("could not reach the broker at %s:%d to cut %s's session: %s", host, port, device_id, exc)
        return False, cert.serial_number
    client.loop_start()
    try:
        done.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    ok = result.get("rc") == 0
    if not ok:
        log.warning(
            "cutting %s's session at %s:%d failed (reason %s)", device_id, host, port, result.get("rc")
        )
    return ok, cert.serial_number


def _load_chain_from_memory(
    ctx: ssl.SSLContext, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> None:
    """ssl wants files; a memfd keeps the throw-away key off the disk."""
    pem = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.memfd_create("edge-auth-kick")
    try:
        os.write(fd, pem)
        ctx.load_cert_chain(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)
