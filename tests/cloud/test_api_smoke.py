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
