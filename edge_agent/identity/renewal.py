"""The daemon renews its enrolled certificate before it expires.

Checked daily against the validity recorded in ``enrollment.json``; only when a renewal is
due is :mod:`edge_agent.identity.enroll` (and with it ``cryptography``, about 8 MB of RSS on a
Pi) imported, so a daemon that is not renewing does not carry it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from edge_agent.identity.stored import EnrolledIdentity, load_identity

log = logging.getLogger(__name__)

RENEW_CHECK_S = 86400.0
RENEW_RETRY_S = 3600.0
RENEW_BEFORE_MAX_S = 30 * 86400.0


def renewal_due(identity: EnrolledIdentity, now: float) -> bool:
    """Less than a third of the lifetime (at most 30 days) left."""
    if identity.mode != "cert" or identity.not_after is None:
        return False
    if identity.not_before is not None:
        lifetime = float(identity.not_after - identity.not_before)
    else:  # enrolled before the start of validity was recorded: read it from the certificate
        from cryptography import x509

        cert = x509.load_pem_x509_certificate(identity.cert.read_bytes())
        lifetime = cert.not_valid_after_utc.timestamp() - cert.not_valid_before_utc.timestamp()
    return identity.not_after - now < min(lifetime / 3, RENEW_BEFORE_MAX_S)


async def renewal_loop(state_dir: Path, *, check_every: float = RENEW_CHECK_S) -> None:
    """For the daemon: renew the certificate when due; check daily, retry hourly after a failure."""
    while True:
        delay = check_every
        identity = load_identity(state_dir)
        if identity is not None and renewal_due(identity, time.time()):
            from edge_agent.identity.enroll import EnrollmentError, renew

            try:
                renewed = await asyncio.to_thread(renew, state_dir)
                log.info(
                    "certificate renewed; valid until %s (used from the next connection)", renewed.not_after
                )
            except (EnrollmentError, OSError, ValueError) as exc:
                log.warning("certificate renewal failed (retrying in %d min): %s", RENEW_RETRY_S // 60, exc)
                delay = min(check_every, RENEW_RETRY_S)
        await asyncio.sleep(delay)
