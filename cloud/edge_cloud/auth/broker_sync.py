"""Keeping Mosquitto's files true to the database, and making the broker reload them.

:meth:`BrokerSync.apply` renders every file from the database (never patches them) and the
revocations already deployed (:mod:`edge_cloud.auth.revocation_record`), writes
each atomically, and sends SIGHUP to the pid in ``broker.pid_file``.  It runs after every
change, at start (reconcile) and daily (the CRL's nextUpdate must not pass: OpenSSL
refuses every client once the CRL has expired).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy.engine import Engine

from edge_cloud.auth import revocation_record
from edge_cloud.auth.broker_files import BrokerLayout, render_acl, render_conf, render_passwd
from edge_cloud.auth.ca import CertificateAuthority, pem
from edge_cloud.auth.errors import BrokerSyncError
from edge_cloud.auth.mosquitto_passwd import line
from edge_cloud.auth.settings import AuthSettings
from edge_cloud.auth.tables import devices
from edge_protocol.files import write_atomic

log = logging.getLogger(__name__)

SERVER_CERT_LIFETIME = 365 * 86400.0
SERVER_CERT_RENEW_BEFORE = 30 * 86400.0


@dataclass(frozen=True)
class SyncResult:
    written: list[Path]
    signalled_pid: int | None


class BrokerSync:
    def __init__(
        self,
        settings: AuthSettings,
        engine: Engine,
        ca: CertificateAuthority,
        service_ca: CertificateAuthority,
        clock: Callable[[], float] = time.time,
        *,
        out_dir: Path | None = None,
    ) -> None:
        """``out_dir``: render there instead of ``broker.out_dir`` (a one-off snapshot)."""
        b = settings.broker
        self.layout = BrokerLayout(
            out_dir or b.out_dir,
            b.port,
            b.bind_address,
            b.password_port,
            b.max_packet_size,
            b.service_port,
            b.service_bind_address,
            b.log_denials,
            max_queued_messages=b.max_queued_messages,
        )
        self.settings = settings
        self.engine = engine
        self.ca = ca
        self.service_ca = service_ca
        self.clock = clock
        self._lock = threading.Lock()

    def apply(self, *, signal_broker: bool = True) -> SyncResult:
        with self._lock:
            try:
                written = self._write_files()
            except OSError as exc:
                raise BrokerSyncError(
                    f"cannot write the broker files in {self.layout.out_dir}: {exc}"
                ) from exc
            pid = self._reload() if signal_broker else None
            return SyncResult(written, pid)

    def _write_files(self) -> list[Path]:
        now = self.clock()
        with self.engine.connect() as conn:
            device_rows = list(
                conn.execute(
                    sa.select(devices.c.id, devices.c.status, devices.c.auth_mode, devices.c.password_hash)
                )
            )
            in_database = revocation_record.from_database(conn)
        # Never more permissive than what is deployed: a database restored from an older
        # backup does not know the later revocations, the record beside the CRL does.
        deployed_dir = self.settings.broker.out_dir
        deployed = revocation_record.read_deployed(deployed_dir, self.ca, self.service_ca)
        record = in_database.union(deployed).current(now)
        denied = {r.id for r in device_rows if r.status in ("revoked", "disabled")} | record.devices
        passwords = [
            line(r.id, r.password_hash)
            for r in device_rows
            if r.status == "active" and r.auth_mode == "password" and r.password_hash and r.id not in denied
        ]
        layout = self.layout
        layout.out_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        written = []
        written += self._server_cert(now)
        if layout.out_dir == deployed_dir:  # a --out snapshot leaves the deployed record alone
            written.append(revocation_record.write(deployed_dir, record))  # before what it covers
        crl = self.ca.crl(
            record.crl_entries(),
            now=now,
            lifetime=self.settings.certificates.crl_lifetime,
            number=int(now * 1000),
        )
        # The service listener's: the same nextUpdate, renewed by the same daily render.
        service_crl = self.service_ca.crl(
            record.service_crl_entries(),
            now=now,
            lifetime=self.settings.certificates.crl_lifetime,
            number=int(now * 1000),
        )
        for path, text, mode in (
            (layout.ca, self.ca.cert_pem, 0o644),
            (layout.service_ca, self.service_ca.cert_pem, 0o644),
            (layout.crl, crl, 0o644),
            (layout.service_crl, service_crl, 0o644),
            (layout.passwd, render_passwd(passwords), 0o640),
            (
                layout.acl,
                render_acl(ingest_identity=self.settings.broker.ingest_identity, denied=sorted(denied)),
                0o644,
            ),
            (layout.conf, render_conf(layout), 0o644),
        ):
            written.append(write_atomic(path, text, mode=mode))
        return written

    def _server_cert(self, now: float) -> list[Path]:
        """Issue the broker's certificate from our CA if it is missing, foreign or near expiry."""
        layout = self.layout
        if layout.server_cert.exists() and layout.server_key.exists():
            try:
                cert = x509.load_pem_x509_certificate(layout.server_cert.read_bytes())
                if (
                    self.ca.issued_by_me(cert)
                    and cert.not_valid_after_utc.timestamp() - now > SERVER_CERT_RENEW_BEFORE
                ):
                    return []
            except ValueError:
                pass  # unreadable: replace it
        cert, key = self.ca.sign_server(
            self.settings.broker.server_names, now=now, lifetime=SERVER_CERT_LIFETIME
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        # Key first: Mosquitto must never pair a new certificate with the old key.
        return [
            write_atomic(layout.server_key, key_pem, mode=0o640),
            write_atomic(layout.server_cert, pem(cert)),
        ]

    def _reload(self) -> int | None:
        pid_file = self.settings.broker.pid_file
        if pid_file is None:
            return None
        try:
            pid = int(pid_file.read_text().strip())
        except FileNotFoundError:
            log.warning(
                "broker pid file %s does not exist: broker not running? It reads the files when it starts",
                pid_file,
            )
            return None
        except (OSError, ValueError) as exc:
            raise BrokerSyncError(f"cannot read the broker pid file {pid_file}: {exc}") from exc
        try:
            os.kill(pid, signal.SIGHUP)
        except ProcessLookupError:
            log.warning(
                "broker pid %d (from %s) is not running; it reads the files when it starts", pid, pid_file
            )
            return None
        except PermissionError as exc:
            raise BrokerSyncError(
                f"not allowed to signal the broker (pid {pid} from {pid_file}); run edge-auth as the broker's user "
                "or use the systemd path unit (docs/CLOUD_AUTH.md)"
            ) from exc
        return pid
