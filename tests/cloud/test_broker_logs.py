"""What an operator sees of refused clients in Mosquitto's log (docs/CLOUD_AUTH.md quotes
these lines; Mosquitto 2.0.11 with the generated files)."""

from __future__ import annotations

from pathlib import Path

from tests.cloud.broker import auth_with_broker
from tests.cloud.mqtt_peer import Peer, wait_for
from tests.mosquitto import free_port, make_tls_files

NOT_AUTHORIZED = 0x87
BAD_CERT = "error:0A000086:SSL routines::certificate verify failed"
NO_CERT = "error:0A0000C7:SSL routines::peer did not return a certificate"
TLS_REFUSED = "Client <unknown> disconnected: Protocol error."
PASSWORD_REFUSED = "Client <unknown> disconnected, not authorised."


def test_refused_certificates_passwords_and_cut_sessions_are_logged(tmp_path: Path) -> None:
    """mosquitto.conf narrowed to errors: the generated file still brings the refusals in."""
    url = f"sqlite:///{tmp_path / 'auth.db'}"
    with auth_with_broker(tmp_path, url, log_types=("error",), password_port=free_port()) as env:
        a, b = env.enroll("dev-a"), env.enroll("dev-b")
        peer = env.enroll_password("dev-pw")
        foreign = make_tls_files(tmp_path / "foreign", client_cn="dev-a")
        assert not Peer(
            env.broker.port, "dev-a", ca=a.ca, cert=foreign.client_cert, key=foreign.client_key
        ).connect()
        assert not Peer(env.broker.port, "anon", ca=a.ca).connect()
        assert not Peer(peer("x").port, "dev-pw", ca=a.ca, username="dev-pw", password="wrong").connect()
        with env.peer(b) as pb:
            assert pb.connect()
            assert pb.publish("devices/dev-a/events") == NOT_AUTHORIZED
            env.revoke("dev-b")
            wait_for(lambda: bool(pb.disconnects), what="the revoked session to be cut")
        assert not env.peer(b).connect()
        # A refused handshake is logged in one of two forms ("OpenSSL Error[0]: <reason>" then
        # "disconnected: Protocol error", or "Client connection from <ip> failed: <reason>"),
        # depending on whether the client has hung up by the time Mosquitto reads its end.
        wait_for(lambda: env.broker.log.count(BAD_CERT) == 2, what="two refused certificates logged")
        wait_for(lambda: env.broker.log.count(NO_CERT) == 1, what="the missing certificate logged")
        log = env.broker.log
        assert log.count(PASSWORD_REFUSED) == 1
        assert "New client connected from 127.0.0.1:" in log and "as dev-b (p5, c1, k30, u'dev-b')." in log
        assert "Client dev-b already connected, closing old connection." in log  # the revocation's cut
        assert "Denied PUBLISH" not in log  # debug level: broker.log_denials


def test_log_denials_logs_every_refused_publish(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'auth.db'}"
    with (
        auth_with_broker(tmp_path, url, log_types=(), log_denials=True) as env,
        env.peer(env.enroll("dev-a")) as pa,
    ):
        assert pa.connect()
        assert pa.publish("devices/dev-b/events", b"forged") == NOT_AUTHORIZED
        line = "Denied PUBLISH from dev-a (d0, q1, r0, m1, 'devices/dev-b/events', ... (6 bytes))"
        wait_for(lambda: line in env.broker.log, what="the denial in the log")
