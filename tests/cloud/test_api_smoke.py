from __future__ import annotations

from tests.cloud.conftest import Api
from tests.cloud.helpers import csr_pem, new_key


def test_create_and_enroll_device(api: Api) -> None:
    r = api.client.post("/v1/devices", json={"id": "dev-1"}, headers=api.admin())
    assert r.status_code == 201, r.text
    token = r.json()["enrollment_token"]
    r = api.client.post("/v1/enroll", json={"token": token, "csr": csr_pem(new_key())})
    assert r.status_code == 200, r.text
    body = r.json()
    assert "BEGIN CERTIFICATE" in body["certificate"]
    r = api.client.get("/v1/devices/dev-1", headers=api.admin())
    assert r.json()["status"] == "active"


def test_the_service_refreshes_the_broker_files_periodically(service: object) -> None:
    """The CRL must be rewritten before its nextUpdate; the lifespan task does it."""
    from fastapi.testclient import TestClient

    from edge_cloud.auth.api.app import create_app
    from edge_cloud.auth.service import AuthService
    from tests.cloud.mqtt_peer import wait_for

    assert isinstance(service, AuthService)
    crl = service.settings.broker.out_dir / "crl.pem"
    before = crl.stat().st_mtime_ns
    service.clock.advance(3600)  # type: ignore[attr-defined]  # a later CRL number and dates
    with TestClient(create_app(service, refresh_interval=0.2)):
        wait_for(lambda: crl.stat().st_mtime_ns != before, timeout=20, what="a rewritten CRL")
