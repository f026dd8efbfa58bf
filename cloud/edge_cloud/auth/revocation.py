"""Making a revocation, a disable or a re-enrollment bite at the broker within seconds.

1. The database already says so (the caller's committed transaction).
2. The broker files are rewritten — the device's certificates on the CRL, its password
   out of the password file, ``user X`` / ``topic deny #`` in the ACL (not for a
   re-enrollment: the device goes on with its new identity) — and the broker reloads
   (SIGHUP): new handshakes with the old certificates are refused.
3. The live session is cut by a client-id takeover (``session_kick``), and the
   throw-away certificate used for it goes on the CRL with a second reload.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from edge_cloud.auth import audit, registry
from edge_cloud.auth.service import AuthService
from edge_cloud.auth.session_kick import KICK_CERT_LIFETIME, kick_session
from edge_cloud.auth.tables import certificates

KICKER = "edge-auth"
"""The audit actor of a session cut: the service itself, on behalf of the change before it."""


@dataclass(frozen=True)
class CutOff:
    broker_signalled: bool
    session_cut: bool


def cut_off(service: AuthService, device_id: str) -> CutOff:
    result = service.broker.apply()
    with service.engine.connect() as conn:
        enrolled = registry.get_device(conn, device_id).enrolled_at is not None
    if not enrolled:  # never enrolled: no session to cut
        return CutOff(result.signalled_pid is not None, False)
    return CutOff(
        result.signalled_pid is not None, cut_session(service, device_id, why="revoked or disabled")
    )


def cut_session(service: AuthService, device_id: str, *, why: str) -> bool:
    """Close whatever session holds ``device_id``'s client id (the broker files already
    refuse the old credentials).  True if the broker accepted the takeover."""
    b = service.settings.broker
    if not b.cut_sessions:
        return False
    now = service.now()
    done, serial = kick_session(service.ca, device_id, host=b.admin_host, port=b.port, now=now)
    with service.transaction() as conn:
        conn.execute(
            certificates.insert().values(
                serial=format(serial, "x"),
                device_id=device_id,
                fingerprint=f"session-cut-{uuid.uuid4().hex}"[:64],
                issued_at=int(now),
                not_after=int(now + KICK_CERT_LIFETIME),
                revoked_at=int(now),
            )
        )
        audit.record(
            conn, at=now, actor=KICKER, action="device.session_cut", target=device_id, why=why, done=done
        )
    service.broker.apply()
    return done
