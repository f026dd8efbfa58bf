"""The generated Mosquitto files, enforced by a real Mosquitto 2.0 (the issue's broker facts)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509
from typer.testing import CliRunner

from edge_cloud.auth import registry
from edge_cloud.auth.cli import app
from edge_cloud.auth.errors import StateInvalid
from edge_cloud.auth.revocation_record import RECORD_NAME, RESTORE_ACTOR
from edge_cloud.auth.service import open_service
from edge_cloud.auth.tables import audit_log
from edge_cloud.common.errors import EX_CONFIG
from tests.cloud.broker import AuthWithBroker, Identity, auth_with_broker
from tests.cloud.helpers import csr_pem, key_pem, new_key
from tests.cloud.mqtt_peer import Peer, wait_for
from tests.mosquitto import free_port

NOT_AUTHORIZED = 0x87
ACCEPTED = {0x00, 0x10}  # success, or success with no matching subscribers


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'auth.db'}"


def test_enrolled_device_publishes_on_its_own_topics_and_the_ingest_receives(
    tmp_path: Path, sqlite_url: str
) -> None:
    with auth_with_broker(tmp_path, sqlite_url) as env:
        dev = env.enroll("dev-a")
        with env.peer(env.ingest()) as ingest, env.peer(dev) as device:
            assert ingest.connect(), ingest.error
            ingest.subscribe("devices/+/events")
            ingest.subscribe("devices/+/status")
            assert device.connect(), env.broker.log
            assert device.publish("devices/dev-a/events", b"batch-1") in ACCEPTED
            assert device.publish("devices/dev-a/status", b"online") in ACCEPTED
            wait_for(lambda: len(ingest.messages) == 2, what="both messages at the ingest")
            # The ingest writes acks; the device reads them.
            device.subscribe("devices/dev-a/acks")
            assert ingest.publish("devices/dev-a/acks", b"ack") in ACCEPTED
            wait_for(lambda: device.received("devices/dev-a/acks") == [b"ack"], what="ack at the device")


def test_anonymous_foreign_and_self_signed_clients_are_refused(tmp_path: Path, sqlite_url: str) -> None:
    from tests.mosquitto import make_tls_files

    with auth_with_broker(tmp_path, sqlite_url) as env:
        ca = env.enroll("dev-a").ca
        foreign = make_tls_files(tmp_path / "foreign", client_cn="dev-a")  # same CN, another CA
        from tests.cloud.mqtt_peer import Peer

        anonymous = Peer(env.broker.port, "anon", ca=ca)
        assert not anonymous.connect()
        unenrolled = Peer(env.broker.port, "dev-a", ca=ca, cert=foreign.client_cert, key=foreign.client_key)
        assert not unenrolled.connect()
        self_signed = _self_signed(tmp_path / "self", "dev-a")
        assert not Peer(env.broker.port, "dev-a", ca=ca, cert=self_signed[0], key=self_signed[1]).connect()
        # Plain MQTT on the TLS port gets nowhere either.
        assert not Peer(env.broker.port, "dev-a").connect(timeout=15)


def test_a_device_cannot_publish_for_another_and_nobody_receives_it(tmp_path: Path, sqlite_url: str) -> None:
    with auth_with_broker(tmp_path, sqlite_url) as env:
        a, b = env.enroll("dev-a"), env.enroll("dev-b")
        with env.peer(env.ingest()) as ingest, env.peer(a) as pa, env.peer(b) as pb:
            assert ingest.connect() and pa.connect() and pb.connect()
            ingest.subscribe("devices/#")
            pb.subscribe("devices/dev-b/#")  # granted: Mosquitto filters delivery, not SUBSCRIBE
            assert pa.publish("devices/dev-b/events", b"forged") == NOT_AUTHORIZED
            assert pa.publish("devices/dev-b/status", b"forged") == NOT_AUTHORIZED
            assert (
                pa.publish("devices/dev-a/acks", b"self-ack") == NOT_AUTHORIZED
            )  # acks come from the ingest only
            # A marker sent after the forgeries: once it has arrived, the forgeries would have too.
            assert pa.publish("devices/dev-a/events", b"marker") in ACCEPTED
            wait_for(lambda: b"marker" in ingest.received(), what="marker")
            assert b"forged" not in ingest.received() and b"forged" not in pb.received()
            assert b"self-ack" not in ingest.received()
            # And a device does not get another device's acks or commands.
            pa.subscribe("devices/dev-b/acks")
            pa.subscribe("devices/dev-b/commands/#")
            assert ingest.publish("devices/dev-b/commands/reboot", b"cmd") in ACCEPTED
            pb.subscribe("devices/dev-b/commands/#")
            assert ingest.publish("devices/dev-b/commands/reboot", b"cmd2") in ACCEPTED
            wait_for(lambda: b"cmd2" in pb.received(), what="command at dev-b")
            assert pa.received("devices/dev-b/commands/reboot") == []


def test_a_device_writes_exactly_its_own_latest_value_and_discovery_topics(
    tmp_path: Path, sqlite_url: str
) -> None:
    with auth_with_broker(tmp_path, sqlite_url) as env, env.peer(env.enroll("dev-a")) as pa:
        assert pa.connect(), env.broker.log
        for allowed in (
            "devices/dev-a/sensors/climate/state",
            "homeassistant/sensor/dev-a/climate_t/config",
        ):
            assert pa.publish(allowed, b"{}") in ACCEPTED, allowed
        for refused in (
            "devices/dev-b/sensors/climate/state",
            "devices/dev-a/sensors/climate/other",
            "devices/dev-a/sensors/a/b/state",
            "homeassistant/sensor/dev-b/climate_t/config",
            "homeassistant/binary_sensor/dev-a/x/config",
            "homeassistant/status",
        ):
            assert pa.publish(refused, b"{}") == NOT_AUTHORIZED, refused


def test_a_device_cannot_take_over_another_devices_client_id(tmp_path: Path, sqlite_url: str) -> None:
    with auth_with_broker(tmp_path, sqlite_url) as env:
        a, b = env.enroll("dev-a"), env.enroll("dev-b")
        with env.peer(b) as pb, env.peer(a, client_id="dev-b") as pa:
            assert pb.connect()
            assert pa.connect()  # accepted, but under its own identity (client id = CN)
            # Had A taken over the id "dev-b", B's session would have been closed when A's
            # CONNECT was processed, before A got its CONNACK.
            assert pb.publish("devices/dev-b/events", b"still here") in ACCEPTED
            assert pb.disconnects == [] and pa.disconnects == []
            assert "dev-b" in env.broker.log and "New client connected" in env.broker.log


def test_revocation_cuts_the_live_session_and_refuses_reconnects(tmp_path: Path, sqlite_url: str) -> None:
    with auth_with_broker(tmp_path, sqlite_url) as env:
        a, b = env.enroll("dev-a"), env.enroll("dev-b")
        with env.peer(a) as pa, env.peer(b) as pb:
            assert pa.connect() and pb.connect()
            assert pa.publish("devices/dev-a/events") in ACCEPTED
            env.revoke("dev-a")
            wait_for(lambda: bool(pa.disconnects), timeout=10, what="the revoked session to be cut")
            assert not env.peer(a).connect(), "a revoked device must not reconnect"
            # The other device is untouched.
            assert pb.disconnects == [] and pb.publish("devices/dev-b/events") in ACCEPTED
        out = env.service.settings.broker.out_dir
        assert "user dev-a\ntopic deny #" in (out / "acl").read_text()
        revoked = {r.serial_number for r in x509.load_pem_x509_crl((out / "crl.pem").read_bytes())}
        assert _serial(a.cert) in revoked and _serial(b.cert) not in revoked
        device = env.client.get("/v1/devices/dev-a", headers=env.admin_headers).json()
        assert device["status"] == "revoked" and device["certificate_serial"] is None


def test_without_the_takeover_a_reload_denies_but_does_not_cut_a_certificate_session(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Re-checks the broker fact the takeover exists for (Mosquitto 2.0.11): CRL + ACL deny +
    SIGHUP refuse reconnects and every publish (0x87), but leave the session up."""
    with auth_with_broker(tmp_path, sqlite_url, cut_sessions=False) as env:
        a = env.enroll("dev-a")
        with env.peer(a) as pa:
            assert pa.connect()
            reloads = env.broker.log.count("Reloading config")
            env.revoke("dev-a")
            wait_for(lambda: env.broker.log.count("Reloading config") > reloads, what="the reload")
            assert pa.publish("devices/dev-a/events") == NOT_AUTHORIZED
            assert pa.disconnects == []
            assert not env.peer(a).connect()


def _serial(cert: Path) -> int:
    return x509.load_pem_x509_certificate(cert.read_bytes()).serial_number


def _self_signed(folder: Path, cn: str) -> tuple[Path, Path]:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    from tests.cloud.helpers import key_pem, new_key

    key = new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key_pem(key))
    return folder / "cert.pem", folder / "key.pem"


def test_password_mode_device_connects_and_is_cut_when_revoked(tmp_path: Path, sqlite_url: str) -> None:
    from tests.cloud.mqtt_peer import Peer
    from tests.mosquitto import free_port

    with auth_with_broker(tmp_path, sqlite_url, password_port=free_port()) as env:
        r = env.client.post("/v1/devices", json={"id": "dev-pw"}, headers=env.admin_headers)
        r = env.client.post("/v1/enroll", json={"token": r.json()["enrollment_token"], "mode": "password"})
        assert r.status_code == 200, r.text
        body = r.json()
        ca = tmp_path / "ca.pem"
        ca.write_text(body["ca_certificate"])
        port = body["broker"]["password_port"]
        line = (env.service.settings.broker.out_dir / "passwd").read_text()
        assert line.startswith("dev-pw:$7$101$") and body["password"] not in line

        def peer(password: str, client_id: str = "dev-pw") -> Peer:
            return Peer(port, client_id, ca=ca, username="dev-pw", password=password)

        assert not peer("wrong password").connect()
        with peer(body["password"], client_id="anything") as p:
            assert p.connect(), env.broker.log
            assert p.publish("devices/dev-pw/events") in ACCEPTED
            assert p.publish("devices/other/events") == NOT_AUTHORIZED
            env.revoke("dev-pw")
            wait_for(lambda: bool(p.disconnects), timeout=10, what="the revoked session to be cut")
        assert "dev-pw" not in (env.service.settings.broker.out_dir / "passwd").read_text()
        assert not peer(body["password"]).connect()


def test_oversized_publish_is_disconnected(tmp_path: Path, sqlite_url: str) -> None:
    with (
        auth_with_broker(tmp_path, sqlite_url, max_packet_size=2048) as env,
        env.peer(env.enroll("dev-a")) as pa,
    ):
        assert pa.connect()
        assert pa.publish("devices/dev-a/events", b"x" * 1000) in ACCEPTED
        with pytest.raises(ConnectionError):
            pa.publish("devices/dev-a/events", b"x" * 4096)
        assert pa.disconnects


def _wait_reload(env: AuthWithBroker, reloads: int) -> None:
    wait_for(lambda: env.broker.log.count("Reloading config") > reloads, what="the broker reload")


def test_revocations_survive_a_restart_on_a_database_restored_from_an_older_backup(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Issue 14: back up, revoke, restore the older database, start: the revoked
    certificate and password, and the certificate a re-enrollment replaced, stay refused by
    the broker, the CRL keeps the serials, and the restored database is told (revoked
    again, audited); the re-enrolled device's new certificate, unknown to it, still works;
    a device disabled after the backup stays disabled until it is enabled."""
    with auth_with_broker(tmp_path, sqlite_url, password_port=free_port(), cut_sessions=False) as env:
        a, b, d = env.enroll("dev-a"), env.enroll("dev-b"), env.enroll("dev-d")
        password_peer = env.enroll_password("dev-p")
        backup = tmp_path / "backup.db"
        with sqlite3.connect(tmp_path / "auth.db") as live, sqlite3.connect(backup) as copy:
            live.backup(copy)
        env.revoke("dev-a")
        env.revoke("dev-p")
        b2 = _reenroll(env, "dev-b")  # revokes b's first certificate
        r = env.client.post("/v1/devices/dev-d/disable", headers=env.admin_headers)
        assert r.status_code == 200, r.text
        env.service.close()  # stop, restore the older database, start again
        for suffix in ("", "-wal", "-shm"):
            (tmp_path / f"auth.db{suffix}").unlink(missing_ok=True)
        shutil.copyfile(backup, tmp_path / "auth.db")
        reloads = env.broker.log.count("Reloading config")
        restarted = open_service(env.service.settings)
        try:
            _wait_reload(env, reloads)
            out = env.service.settings.broker.out_dir
            revoked = {r.serial_number for r in x509.load_pem_x509_crl((out / "crl.pem").read_bytes())}
            assert {_serial(a.cert), _serial(b.cert)} <= revoked and _serial(b2.cert) not in revoked
            assert not env.peer(a).connect(), "a revoked certificate connected after the restore"
            assert not env.peer(b).connect(), "a replaced certificate connected after the restore"
            assert not password_peer("dev-p").connect(), "a revoked password connected after the restore"
            with env.peer(b2) as pb:
                assert pb.connect() and pb.publish("devices/dev-b/events") in ACCEPTED
            with env.peer(d) as pd:  # disabled: a certificate session, every publish refused
                assert pd.connect() and pd.publish("devices/dev-d/events") == NOT_AUTHORIZED
            with restarted.engine.connect() as conn:
                assert registry.get_device(conn, "dev-a").status == "revoked"
                assert registry.get_device(conn, "dev-p").status == "revoked"
                assert registry.current_certificate(conn, "dev-a") is None
                actions = [
                    (r.actor, r.action, r.target)
                    for r in conn.execute(sa.select(audit_log).where(audit_log.c.actor == RESTORE_ACTOR))
                ]
            assert actions == [
                (RESTORE_ACTOR, "device.revoked", "dev-a"),
                (RESTORE_ACTOR, "device.revoked", "dev-p"),
                (RESTORE_ACTOR, "device.disabled", "dev-d"),
                (RESTORE_ACTOR, "certificate.revoked", format(_serial(b.cert), "x")),
            ]
            # Enabling works as before: the record follows the database for disabled devices.
            with restarted.transaction() as conn:
                registry.set_status(
                    conn, "dev-d", "active", now=restarted.now(), actor=registry.Actor("test")
                )
            restarted.broker.apply()
            # Polled: an earlier SIGHUP's reload may still be due and read the older ACL first.
            wait_for(lambda: _publishes(env.peer(d), "devices/dev-d/events"), what="dev-d enabled")
        finally:
            restarted.close()


def test_a_lost_record_and_an_older_database_keep_a_revoked_password_device_out(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Both lost at once: ``revoked.json`` deleted, and the database restored from before a
    password device was revoked.  The CRL stands in for certificates; a password device has
    none, so the deployed ACL's deny stands in (as disabled: the ACL does not say which).
    It was back in the password file and connected."""
    with auth_with_broker(tmp_path, sqlite_url, password_port=free_port(), cut_sessions=False) as env:
        password_peer = env.enroll_password("dev-p")
        backup = tmp_path / "backup.db"
        with sqlite3.connect(tmp_path / "auth.db") as live, sqlite3.connect(backup) as copy:
            live.backup(copy)
        env.revoke("dev-p")
        env.service.close()
        for suffix in ("", "-wal", "-shm"):
            (tmp_path / f"auth.db{suffix}").unlink(missing_ok=True)
        shutil.copyfile(backup, tmp_path / "auth.db")
        (env.service.settings.broker.out_dir / RECORD_NAME).unlink()
        reloads = env.broker.log.count("Reloading config")
        restarted = open_service(env.service.settings)
        try:
            _wait_reload(env, reloads)
            assert not password_peer("dev-p").connect(), "a revoked password connected after the restore"
            with restarted.engine.connect() as conn:
                assert registry.get_device(conn, "dev-p").status == "disabled"
        finally:
            restarted.close()


def test_an_emptied_database_is_refused_and_the_broker_stays_as_strict(
    tmp_path: Path, database_url: str
) -> None:
    """Issue 14: revoke two devices, stop, move the database away (SQLite) or empty it
    (PostgreSQL), start: refused with one line, exit 78; the revoked stay refused."""
    with auth_with_broker(tmp_path, database_url, cut_sessions=False) as env:
        a, b, c = env.enroll("dev-a"), env.enroll("dev-b"), env.enroll("dev-c")
        for device_id in ("dev-a", "dev-b"):  # the broker acts on a SIGHUP in its next loop
            reloads = env.broker.log.count("Reloading config")
            env.revoke(device_id)
            _wait_reload(env, reloads)
        settings = env.service.settings
        env.service.close()
        crl_before = (settings.broker.out_dir / "crl.pem").read_bytes()
        _empty_database(tmp_path, database_url)
        with pytest.raises(
            StateInvalid, match=r"the database is empty, but .* shows an earlier installation"
        ):
            open_service(settings)
        config = tmp_path / "edge-auth.toml"
        config.write_text(
            f'state_dir = "{settings.state_dir}"\n[database]\nurl = "{database_url}"\n'
            f'[broker]\nout_dir = "{settings.broker.out_dir}"\nport = {settings.broker.port}\n'
            f"service_port = {settings.broker.service_port}\n"
        )
        result = CliRunner().invoke(app, ["serve", "-c", str(config)])  # refused before it serves
        assert result.exit_code == EX_CONFIG, result.output
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
        assert "restore the database from the backup" in result.output
        assert (settings.broker.out_dir / "crl.pem").read_bytes() == crl_before
        assert not env.peer(a).connect() and not env.peer(b).connect()
        with env.peer(c) as pc:
            assert pc.connect()


def _publishes(peer: Peer, topic: str) -> bool:
    with peer:
        return peer.connect() and peer.publish(topic) in ACCEPTED


def _reenroll(env: AuthWithBroker, device_id: str) -> Identity:
    r = env.client.post(f"/v1/devices/{device_id}/enrollment-token", headers=env.admin_headers)
    assert r.status_code == 201, r.text
    key = new_key()
    r = env.client.post("/v1/enroll", json={"token": r.json()["enrollment_token"], "csr": csr_pem(key)})
    assert r.status_code == 200, r.text
    body = r.json()
    return env._save(f"{device_id}-again", key_pem(key), body["certificate"].encode(), body["ca_certificate"])


def _empty_database(tmp_path: Path, database_url: str) -> None:
    if database_url.startswith("sqlite"):
        moved = tmp_path / "moved-away"
        moved.mkdir()
        for path in tmp_path.glob("auth.db*"):
            path.rename(moved / path.name)
        return
    import psycopg

    from tests.cloud.conftest import PG_ADMIN_URL

    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
