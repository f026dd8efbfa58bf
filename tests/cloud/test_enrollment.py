"""Enrollment and renewal through the API, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from edge_protocol.wire import renewal_message
from tests.cloud.conftest import Api
from tests.cloud.helpers import csr_pem, new_key


def create(api: Api, device_id: str) -> str:
    r = api.client.post("/v1/devices", json={"id": device_id}, headers=api.admin())
    assert r.status_code == 201, r.text
    return str(r.json()["enrollment_token"])


def enroll(
    api: Api, token: str, device_id: str | None = None, key: ec.EllipticCurvePrivateKey | None = None
) -> tuple[int, dict[str, object]]:
    body: dict[str, object] = {"token": token, "csr": csr_pem(key or new_key(), cn="ignored")}
    if device_id is not None:
        body["device_id"] = device_id
    r = api.client.post("/v1/enroll", json=body)
    return r.status_code, r.json()


def test_certificate_has_the_device_id_as_cn_and_is_signed_by_the_returned_ca(api: Api) -> None:
    status, body = enroll(api, create(api, "dev-1"))
    assert status == 200
    cert = x509.load_pem_x509_certificate(str(body["certificate"]).encode())
    ca = x509.load_pem_x509_certificate(str(body["ca_certificate"]).encode())
    cert.verify_directly_issued_by(ca)
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "dev-1"
    lifetime = cert.not_valid_after_utc.timestamp() - time.time()
    assert abs(lifetime - api.service.settings.certificates.device_lifetime) < 3600
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [x509.ExtendedKeyUsageOID.CLIENT_AUTH]
    assert body["broker"] == {"host": "localhost", "port": 8883, "password_port": None}


def test_a_token_is_single_use_expires_and_is_bound_to_its_device(api: Api) -> None:
    token = create(api, "dev-1")
    other = create(api, "dev-2")
    assert enroll(api, token, device_id="dev-2")[0] == 403  # someone else's token
    assert enroll(api, token)[0] == 200
    status, body = enroll(api, token)
    assert status == 403 and "already used" in str(body["detail"])
    api.service.clock.advance(api.service.settings.enrollment.token_ttl + 1)  # type: ignore[attr-defined]
    status, body = enroll(api, other)
    assert status == 403 and "expired" in str(body["detail"])
    assert enroll(api, "eet_made-up")[0] == 403


def test_a_bad_csr_is_refused_without_spending_the_token(api: Api) -> None:
    token = create(api, "dev-1")
    for bad in (
        "garbage",
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        "x" * 20000,
    ):
        r = api.client.post("/v1/enroll", json={"token": token, "csr": bad})
        assert r.status_code == 422, r.text
    assert api.client.post("/v1/enroll", json={"token": token}).status_code == 422  # cert mode needs a CSR
    assert enroll(api, token)[0] == 200


def test_claim_token_enrolls_new_devices_up_to_its_uses(api: Api) -> None:
    create(api, "existing")
    r = api.client.post("/v1/claim-tokens", json={"uses": 2}, headers=api.admin())
    assert r.status_code == 201
    claim = r.json()["claim_token"]
    assert enroll(api, claim)[0] == 422  # must name the device
    assert enroll(api, claim, device_id="existing")[0] == 403  # cannot take an existing identity
    assert enroll(api, claim, device_id="factory-1")[0] == 200
    assert enroll(api, claim, device_id="factory-2")[0] == 200
    status, body = enroll(api, claim, device_id="factory-3")
    assert status == 403 and "already used" in str(body["detail"])
    ids = {d["id"]: d["status"] for d in api.client.get("/v1/devices", headers=api.admin()).json()}
    assert ids == {"existing": "pending", "factory-1": "active", "factory-2": "active"}
    r = api.client.post("/v1/claim-tokens", json={"uses": 5}, headers=api.admin())
    assert api.client.delete(f"/v1/claim-tokens/{r.json()['id']}", headers=api.admin()).status_code == 204
    status, body = enroll(api, r.json()["claim_token"], device_id="factory-4")
    assert status == 403 and "withdrawn" in str(body["detail"])


def test_reenrolling_with_a_new_token_revokes_the_old_certificate(api: Api) -> None:
    _, first = enroll(api, create(api, "dev-1"))
    r = api.client.post("/v1/devices/dev-1/enrollment-token", headers=api.admin())
    assert r.status_code == 201
    _, second = enroll(api, r.json()["enrollment_token"])
    crl = (api.service.settings.broker.out_dir / "crl.pem").read_bytes()
    revoked = {c.serial_number for c in x509.load_pem_x509_crl(crl)}
    serial = x509.load_pem_x509_certificate(str(first["certificate"]).encode()).serial_number
    assert serial in revoked
    assert x509.load_pem_x509_certificate(str(second["certificate"]).encode()).serial_number not in revoked


def _renewal(
    device_id: str, cert_pem: str, key: ec.EllipticCurvePrivateKey, new: ec.EllipticCurvePrivateKey, ts: int
) -> dict[str, object]:
    csr = csr_pem(new)
    signature = key.sign(renewal_message(device_id, ts, csr), ec.ECDSA(hashes.SHA256()))
    return {
        "certificate": cert_pem,
        "csr": csr,
        "timestamp": ts,
        "signature": base64.b64encode(signature).decode(),
    }


def test_renewal_needs_a_signature_by_the_current_key(api: Api) -> None:
    key = new_key()
    _, body = enroll(api, create(api, "dev-1"), key=key)
    cert = str(body["certificate"])
    now = int(api.service.now())
    new = new_key()
    # Signed by another key, stale, or for another device: refused.
    assert (
        api.client.post(
            "/v1/devices/dev-1/renew", json=_renewal("dev-1", cert, new_key(), new, now)
        ).status_code
        == 403
    )
    assert (
        api.client.post(
            "/v1/devices/dev-1/renew", json=_renewal("dev-1", cert, key, new, now - 3600)
        ).status_code
        == 403
    )
    create(api, "dev-2")
    assert (
        api.client.post("/v1/devices/dev-2/renew", json=_renewal("dev-2", cert, key, new, now)).status_code
        == 403
    )
    r = api.client.post("/v1/devices/dev-1/renew", json=_renewal("dev-1", cert, key, new, now))
    assert r.status_code == 200, r.text
    renewed = x509.load_pem_x509_certificate(r.json()["certificate"].encode())
    assert renewed.public_key().public_numbers() == new.public_key().public_numbers()  # type: ignore[union-attr]
    # A replay of the same request fails: the old certificate is no longer the current one.
    assert (
        api.client.post("/v1/devices/dev-1/renew", json=_renewal("dev-1", cert, key, new, now)).status_code
        == 403
    )
    # Once revoked, no renewal.
    assert api.client.post("/v1/devices/dev-1/revoke", headers=api.admin()).status_code == 200
    nxt = _renewal("dev-1", r.json()["certificate"], new, new_key(), now)
    assert api.client.post("/v1/devices/dev-1/renew", json=nxt).status_code == 403
    assert api.client.post("/v1/devices/dev-1/renew", json={**nxt, "signature": "!!"}).status_code == 422
