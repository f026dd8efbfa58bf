"""Refused credentials, a wrong CA, mutual TLS and a refusing ACL, against a real Mosquitto.

The documented behaviour in every failure: one clear log line per series of attempts
(not per retry), keep retrying with backoff, never crash, keep every event; connect and
drain as soon as the cause is fixed.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

import pytest

from edge_agent.settings import TLSSettings
from edge_agent.uplink import Forwarder
from tests.mosquitto import Mosquitto, make_tls_files
from tests.uplink.conftest import DEVICE, running, settings_for
from tests.uplink.helpers import BOOT, hash_password_7, readings, until, write_password_file
from tests.uplink.ingest import IngestStandIn
from tests.uplink.memory_outbox import MemoryOutbox

LOGGER = "edge_agent.uplink"


def warnings_about(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and text in r.getMessage()]


def test_refused_credentials_log_once_keep_events_and_recover(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    passwords = tmp_path / "passwd"
    write_password_file(passwords, {DEVICE: "the-right-one", "ingest": "ingest-pw"})
    with (
        Mosquitto(tmp_path / "broker", password_file=passwords) as broker,
        IngestStandIn(broker.port, ack=False, username="ingest", password="ingest-pw") as observer,
    ):

        async def main() -> Forwarder:
            outbox = MemoryOutbox()
            outbox.append_now(readings(25))
            settings = settings_for(broker, username=DEVICE, password="not-the-right-one")
            fwd = Forwarder(outbox, settings, device_id=DEVICE, boot=BOOT)
            async with running(fwd):
                await until(lambda: fwd.stats.connect_failures >= 6, what="several refused attempts")
                assert fwd.stats.state in ("disconnected", "connecting")
                assert outbox.pending_count == 25 and fwd.stats.connects == 0
                # The operator fixes the broker side; the daemon was never restarted.
                write_password_file(passwords, {DEVICE: "not-the-right-one", "ingest": "ingest-pw"})
                broker.reload()
                await until(lambda: outbox.pending_count == 0 and observer.has_seqs(set(range(1, 26))), 15)
            return fwd

        fwd = asyncio.run(main())

    refused = warnings_about(caplog, "cannot connect")
    assert len(refused) == 1, refused
    assert "not authorized" in refused[0].lower() or "bad user name or password" in refused[0].lower()
    assert "check mqtt.username/mqtt.password" in refused[0]
    assert "CONNACK 0x8" in refused[0]
    recovered = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.INFO and "failed attempt" in r.getMessage()
    ]
    assert len(recovered) == 1 and fwd.stats.connects == 1
    assert fwd.stats.last_error is not None


def test_fallback_password_hash_is_accepted_by_mosquitto(tmp_path: Path) -> None:
    passwords = tmp_path / "passwd"
    passwords.write_text(f"ingest:{hash_password_7('pw')}\n")
    passwords.chmod(0o600)
    with Mosquitto(tmp_path / "broker", password_file=passwords) as broker:
        IngestStandIn(broker.port, ack=False, username="ingest", password="pw").start(timeout=5).stop()


def test_wrong_ca_is_logged_once_and_retried_until_the_ca_file_is_fixed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    real = make_tls_files(tmp_path / "pki-real")
    other = make_tls_files(tmp_path / "pki-other")
    device_ca = tmp_path / "device-ca.pem"
    shutil.copy(other.ca_cert, device_ca)
    with (
        Mosquitto(tmp_path / "broker", tls=real) as broker,
        IngestStandIn(broker.port, ack=False, ca_file=real.ca_cert) as observer,
    ):

        async def main() -> Forwarder:
            outbox = MemoryOutbox()
            outbox.append_now(readings(10))
            settings = settings_for(broker, tls=TLSSettings(ca_file=device_ca))
            fwd = Forwarder(outbox, settings, device_id=DEVICE, boot=BOOT)
            async with running(fwd):
                await until(lambda: fwd.stats.connect_failures >= 4)
                assert outbox.pending_count == 10 and fwd.stats.connects == 0
                # The CA file is read again at every attempt: fixing it is enough.
                shutil.copy(real.ca_cert, device_ca)
                await until(lambda: outbox.pending_count == 0 and observer.has_seqs(set(range(1, 11))), 15)
            return fwd

        fwd = asyncio.run(main())

    failures = warnings_about(caplog, "cannot connect")
    assert len(failures) == 1, failures
    assert "TLS handshake" in failures[0] and "certificate verify failed" in failures[0]
    assert fwd.stats.connects == 1


def test_mutual_tls_forwards_and_a_missing_client_certificate_is_a_tls_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    tls = make_tls_files(tmp_path / "pki")
    with (
        Mosquitto(tmp_path / "broker", tls=tls, require_certificate=True) as broker,
        IngestStandIn(
            broker.port, ack=False, ca_file=tls.ca_cert, cert=(tls.client_cert, tls.client_key)
        ) as observer,
    ):

        async def main() -> tuple[Forwarder, Forwarder]:
            outbox = MemoryOutbox()
            outbox.append_now(readings(40))
            mutual = TLSSettings(ca_file=tls.ca_cert, cert_file=tls.client_cert, key_file=tls.client_key)
            fwd = Forwarder(outbox, settings_for(broker, tls=mutual), device_id=DEVICE, boot=BOOT)
            async with running(fwd):
                await until(lambda: outbox.pending_count == 0 and observer.has_seqs(set(range(1, 41))))

            anonymous = Forwarder(
                MemoryOutbox(),
                settings_for(broker, tls=TLSSettings(ca_file=tls.ca_cert), client_id="no-cert"),
                device_id=DEVICE,
                boot=BOOT,
            )
            async with running(anonymous):
                await until(lambda: anonymous.stats.connect_failures >= 2)
            return fwd, anonymous

        fwd, anonymous = asyncio.run(main())

    assert fwd.stats.acked_events == 40 and fwd.stats.connects == 1
    assert anonymous.stats.connects == 0
    failures = warnings_about(caplog, "cannot connect")
    assert len(failures) == 1 and "TLS" in failures[0], failures


def test_publish_refused_by_the_acl_keeps_the_events_until_allowed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    acl = tmp_path / "acl"
    acl.write_text(f"topic readwrite devices/{DEVICE}/status\ntopic read devices/#\n")
    with (
        Mosquitto(tmp_path / "broker", acl_file=acl) as broker,
        IngestStandIn(broker.port, ack=False) as observer,
    ):

        async def main() -> Forwarder:
            outbox = MemoryOutbox()
            outbox.append_now(readings(30))
            settings = settings_for(broker, batch_max_events=10, reconnect_min=0.1, reconnect_max=0.5)
            fwd = Forwarder(outbox, settings, device_id=DEVICE, boot=BOOT)
            async with running(fwd):
                await until(lambda: fwd.stats.rejected_batches >= 6, what="PUBACKs with 0x87")
                assert outbox.pending_count == 30 and fwd.stats.acked_events == 0
                assert fwd.stats.state == "connected"
                acl.write_text("topic readwrite devices/#\n")
                broker.reload()
                await until(lambda: outbox.pending_count == 0 and observer.has_seqs(set(range(1, 31))), 15)
            return fwd

        fwd = asyncio.run(main())

    rejected = warnings_about(caplog, "publish rejected")
    assert len(rejected) == 1, rejected
    assert "PUBACK 0x87" in rejected[0]
    assert fwd.stats.acked_events == 30 and fwd.stats.connections_lost == 0
