"""Making a revocation (or a disable) bite at the broker within seconds.

1. The database already says so (the caller's committed transaction).
2. The broker files are rewritten — the device's certificates on the CRL, its password
   out of the password file, ``user X`` / ``topic deny #`` in the ACL — and the broker
   reloads (SIGHUP): new handshakes are refused and every publish is refused.
3. The live session is cut by a client-id takeover (``session_kick``), and the
   throw-away certificate used for it goes on the CRL with a second reload.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from edge_cloud.auth import registry
from edge_cloud.auth.service import AuthService
from edge_cloud.auth.session_kick import kick_session
from edge_cloud.auth.tables import certificates


@dataclass(frozen=True)
class CutOff:
    broker_signalled: bool
    session_cut: bool


def cut_off(service: AuthService, device_id: str) -> CutOff:
    result = service.broker.apply()
    b = service.settings.broker
    with service.engine.connect() as conn:
        enrolled = registry.get_device(conn, device_id).enrolled_at is not None
    if not b.cut_sessions or not enrolled:  # never enrolled: no session to cut
        return CutOff(result.signalled_pid is not None, False)
    now = service.now()
    done, serial = kick_session(service.ca, device_id, host=b.admin_host, port=b.port, now=now)
    with service.transaction() as conn:
        conn.execute(
            certificates.insert().values(
                serial=format(serial, "x"),
                device_id=device_id,
                fingerprint=f"session-cut-{uuid.uuid4().hex}"[:64],
                issued_at=int(now),
                not_after=int(now + 600),
                revoked_at=int(now),
            )
        )
    service.broker.apply()
    return CutOff(result.signalled_pid is not None, done)
