"""Re-enrollment (a new token, a new key) against a real Mosquitto with the generated files:
whoever still holds the old certificate is cut off at once and cannot come back."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from tests.cloud.broker import auth_with_broker
from tests.cloud.mqtt_peer import wait_for

ACCEPTED = {0x00, 0x10}


def _serial(cert: Path) -> int:
    return x509.load_pem_x509_certificate(cert.read_bytes()).serial_number


def test_re_enrollment_cuts_the_old_certificates_session_and_refuses_it(tmp_path: Path) -> None:
    with auth_with_broker(tmp_path, f"sqlite:///{tmp_path / 'auth.db'}") as env:
        old, other = env.enroll("dev-a"), env.enroll("dev-b")
        with env.peer(old) as stolen, env.peer(other) as bystander:
            assert stolen.connect() and bystander.connect()
            assert stolen.publish("devices/dev-a/events", b"before") in ACCEPTED
            new = env.reenroll("dev-a")
            # Cut before the enrollment answered: no take-over by the real device was needed.
            wait_for(lambda: bool(stolen.disconnects), timeout=10, what="the old session to be cut")
            assert not env.peer(old).connect(), "the old certificate must not reconnect"
            assert bystander.disconnects == [] and bystander.publish("devices/dev-b/events") in ACCEPTED
        with env.peer(new) as fresh:
            assert fresh.connect(), env.broker.log
            assert fresh.publish("devices/dev-a/events", b"after") in ACCEPTED
        crl = x509.load_pem_x509_crl((env.service.settings.broker.out_dir / "crl.pem").read_bytes())
        revoked = {r.serial_number for r in crl}
        assert _serial(old.cert) in revoked and _serial(new.cert) not in revoked
        actions = [
            e["action"]
            for e in env.client.get("/v1/audit", headers=env.admin_headers).json()
            if e["target"] == "dev-a"
        ]
        assert actions[:2] == ["device.session_cut", "device.enrolled"]


def test_re_enrollment_in_password_mode_cuts_the_old_password_session(tmp_path: Path) -> None:
    """Held before the takeover too (Mosquitto 2.0.11 re-checks a password session on reload,
    and the password changed); kept so that stays true."""
    from tests.cloud.mqtt_peer import Peer
    from tests.mosquitto import free_port

    with auth_with_broker(tmp_path, f"sqlite:///{tmp_path / 'auth.db'}", password_port=free_port()) as env:
        old_peer = env.enroll_password("dev-pw")
        with old_peer("dev-pw") as stolen:
            assert stolen.connect(), env.broker.log
            r = env.client.post("/v1/devices/dev-pw/enrollment-token", headers=env.admin_headers)
            r = env.client.post(
                "/v1/enroll", json={"token": r.json()["enrollment_token"], "mode": "password"}
            )
            assert r.status_code == 200, r.text
            wait_for(lambda: bool(stolen.disconnects), timeout=10, what="the old session to be cut")
        assert not old_peer("dev-pw").connect(), "the old password must not reconnect"
        body = r.json()
        fresh = Peer(
            body["broker"]["password_port"],
            "dev-pw",
            ca=stolen.ca,
            username="dev-pw",
            password=body["password"],
        )
        with fresh:
            assert fresh.connect(), env.broker.log
            assert fresh.publish("devices/dev-pw/events") in ACCEPTED
