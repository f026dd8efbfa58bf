"""A real Mosquitto running the files the auth service generates, and enrolled devices for it."""

from __future__ import annotations

import getpass
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient

from edge_cloud.auth import operators
from edge_cloud.auth.api.app import create_app
from edge_cloud.auth.service import AuthService, open_service
from edge_cloud.auth.service_identity import service_client_id, share_group, write_service_identity
from tests.cloud.helpers import ADMIN, ADMIN_PASSWORD, csr_pem, key_pem, make_settings, new_key
from tests.cloud.mqtt_peer import Peer
from tests.mosquitto import Mosquitto, free_port


class GeneratedBroker(Mosquitto):
    """Mosquitto whose only listeners and security settings are the generated ``edge-devices.conf``."""

    def __init__(
        self, directory: Path, out_dir: Path, port: int, pid_file: Path, log_types: tuple[str, ...] = ("all",)
    ) -> None:
        super().__init__(directory)
        self.port = port
        self.config.write_text(
            "\n".join(
                [
                    f"user {getpass.getuser()}",
                    f"pid_file {pid_file}",
                    "persistence false",
                    f"log_dest file {directory / 'mosquitto.log'}",
                    *(f"log_type {t}" for t in log_types),
                    f"include_dir {out_dir}",
                ]
            )
            + "\n"
        )
        self.pid_file = pid_file

    def start(self, timeout: float = 10.0) -> Mosquitto:
        super().start(timeout)
        # Mosquitto writes pid_file only when it daemonises; the service finds it here.
        assert self.process is not None
        self.pid_file.write_text(f"{self.process.pid}\n")
        return self


@dataclass
class Identity:
    device_id: str
    cert: Path
    key: Path
    ca: Path
    # A cloud service's certificate (service CA): it connects to the service listener.
    service: bool = False


@dataclass
class AuthWithBroker:
    service: AuthService
    client: TestClient
    broker: GeneratedBroker
    admin_headers: dict[str, str]
    files: Path

    def enroll(self, device_id: str) -> Identity:
        r = self.client.post("/v1/devices", json={"id": device_id}, headers=self.admin_headers)
        assert r.status_code == 201, r.text
        return self._enroll_with(device_id, r.json()["enrollment_token"], device_id)

    def reenroll(self, device_id: str) -> Identity:
        """A new enrollment token for ``device_id`` and a new key enrolled with it (a replaced SD card)."""
        r = self.client.post(f"/v1/devices/{device_id}/enrollment-token", headers=self.admin_headers)
        assert r.status_code == 201, r.text
        return self._enroll_with(device_id, r.json()["enrollment_token"], f"{device_id}.again")

    def _enroll_with(self, device_id: str, token: str, folder: str) -> Identity:
        key = new_key()
        r = self.client.post("/v1/enroll", json={"token": token, "csr": csr_pem(key)})
        assert r.status_code == 200, r.text
        identity = self._save(
            folder, key_pem(key), r.json()["certificate"].encode(), r.json()["ca_certificate"]
        )
        return Identity(device_id, identity.cert, identity.key, identity.ca)

    def enroll_password(self, device_id: str) -> Callable[..., Peer]:
        """Enroll ``device_id`` in password mode; returns a maker of its clients: by client id,
        on the password listener unless ``port`` says otherwise."""
        r = self.client.post("/v1/devices", json={"id": device_id}, headers=self.admin_headers)
        assert r.status_code == 201, r.text
        r = self.client.post("/v1/enroll", json={"token": r.json()["enrollment_token"], "mode": "password"})
        assert r.status_code == 200, r.text
        body = r.json()
        folder = self.files / device_id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "ca.pem").write_text(body["ca_certificate"])
        port, password = body["broker"]["password_port"], body["password"]

        def peer(client_id: str, port: int = port) -> Peer:
            return Peer(port, client_id, ca=folder / "ca.pem", username=device_id, password=password)

        return peer

    def _save(self, name: str, key: bytes, cert: bytes, ca: str) -> Identity:
        folder = self.files / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "key.pem").write_bytes(key)
        (folder / "key.pem").chmod(0o600)
        (folder / "cert.pem").write_bytes(cert)
        (folder / "ca.pem").write_text(ca)
        return Identity(name, folder / "cert.pem", folder / "key.pem", folder / "ca.pem")

    def ingest(self) -> Identity:
        name = self.service.settings.broker.ingest_identity
        folder = self.files / name
        write_service_identity(self.service, folder, name)
        return Identity(name, folder / f"{name}.pem", folder / f"{name}.key", folder / "ca.pem", service=True)

    def share_group(self) -> str:
        """The ingest's secret shared-subscription group."""
        return share_group(self.service, self.service.settings.broker.ingest_identity)

    @property
    def service_port(self) -> int:
        return self.service.settings.broker.service_port

    def peer(
        self,
        who: Identity,
        client_id: str | None = None,
        *,
        port: int | None = None,
        session_expiry: int | None = None,
    ) -> Peer:
        """A client with ``who``'s certificate, on its own listener unless ``port`` says otherwise.

        A service's default client id is ``<CN>@test`` (its processes name themselves
        ``<CN>@<instance>``); a device's is its id (the device listener forces it anyway)."""
        if port is None:
            port = self.service_port if who.service else self.broker.port
        if client_id is None:
            client_id = service_client_id(who.device_id, "test") if who.service else who.device_id
        return Peer(port, client_id, ca=who.ca, cert=who.cert, key=who.key, session_expiry=session_expiry)

    def revoke(self, device_id: str) -> None:
        r = self.client.post(f"/v1/devices/{device_id}/revoke", headers=self.admin_headers)
        assert r.status_code == 200, r.text


@contextmanager
def auth_with_broker(
    tmp_path: Path, database_url: str, *, log_types: tuple[str, ...] = ("all",), **broker: object
) -> Iterator[AuthWithBroker]:
    """The service with a Mosquitto on its files; ``log_types``: mosquitto.conf's own (none:
    only those of the generated file)."""
    port = free_port()
    pid_file = tmp_path / "mosquitto.pid"
    taken = {port, broker.get("password_port")}
    broker.setdefault("service_port", next(p for p in iter(free_port, 0) if p not in taken))
    settings = make_settings(
        tmp_path, database_url, port=port, bind_address="127.0.0.1", pid_file=pid_file, **broker
    )
    service = open_service(settings)  # writes the broker files (reconcile at start)
    try:
        with operators_admin(service), TestClient(create_app(service)) as client:
            r = client.post(
                "/v1/token", data={"grant_type": "password", "username": ADMIN, "password": ADMIN_PASSWORD}
            )
            headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
            mosquitto = GeneratedBroker(
                tmp_path / "mosquitto", settings.broker.out_dir, port, pid_file, log_types
            )
            with mosquitto as mosq:
                yield AuthWithBroker(service, client, mosq, headers, tmp_path / "identities")
    finally:
        service.close()


@contextmanager
def operators_admin(service: AuthService) -> Iterator[None]:
    with service.transaction() as conn:
        operators.create_operator(
            conn, username=ADMIN, password=ADMIN_PASSWORD, scopes=["admin"], now=service.now(), actor="test"
        )
    yield
