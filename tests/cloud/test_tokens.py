"""Operators, access and refresh tokens, API keys, scopes, rate limits, audit — on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_cloud.auth import operators
from edge_cloud.common.jwt_verify import JWTVerifier
from tests.cloud.conftest import Api
from tests.cloud.helpers import ADMIN, ADMIN_PASSWORD


def login(
    api: Api, username: str = ADMIN, password: str = ADMIN_PASSWORD, **extra: str
) -> tuple[int, dict[str, str]]:
    r = api.client.post(
        "/v1/token", data={"grant_type": "password", "username": username, "password": password, **extra}
    )
    return r.status_code, r.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def add_operator(api: Api, name: str, scopes: list[str]) -> None:
    with api.service.transaction() as conn:
        operators.create_operator(
            conn, username=name, password=ADMIN_PASSWORD, scopes=scopes, now=api.service.now(), actor="test"
        )


def test_access_token_claims_verify_against_the_published_jwks(api: Api) -> None:
    status, body = login(api)
    assert status == 200 and body["token_type"] == "bearer" and body["refresh_token"].startswith("ert_")
    jwks = api.client.get("/.well-known/jwks.json").json()
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "EdDSA" and header["kid"] in {k["kid"] for k in jwks["keys"]}
    t = api.service.settings.tokens
    claims = JWTVerifier(jwks, issuer=t.issuer, audience=t.audience).verify(
        body["access_token"], scope="devices:write"
    )
    assert claims.subject == ADMIN and set(claims.raw) >= {"iss", "sub", "aud", "exp", "jti", "scope", "iat"}
    assert claims.expires_at - time.time() == pytest.approx(t.access_ttl, abs=60)


def _hs256(payload: dict[str, object], secret: bytes, kid: str) -> str:
    """The algorithm-confusion attack: HMAC keyed with the public key (PyJWT will not make one)."""
    head = _unsigned(payload, {"alg": "HS256", "typ": "JWT", "kid": kid}).rstrip(".")
    sig = hmac.new(secret, head.encode(), hashlib.sha256).digest()
    return f"{head}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"


def _unsigned(payload: dict[str, object], header: dict[str, str]) -> str:
    def part(d: dict[str, object] | dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(payload)}."


def test_forged_expired_and_unscoped_tokens_are_refused(api: Api) -> None:
    _, body = login(api)
    good = jwt.decode(body["access_token"], options={"verify_signature": False})
    kid = jwt.get_unverified_header(body["access_token"])["kid"]
    other_key = Ed25519PrivateKey.generate()
    public_pem = api.service.keys.current.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = {
        "alg none": _unsigned(good, {"alg": "none", "typ": "JWT", "kid": kid}),
        "wrong key": jwt.encode(good, other_key, algorithm="EdDSA", headers={"kid": kid}),
        "HS256 with the public key": _hs256(good, public_pem, kid),
        "expired": jwt.encode(
            {**good, "exp": int(time.time()) - 120, "iat": int(time.time()) - 1000},
            api.service.keys.current.private,
            algorithm="EdDSA",
            headers={"kid": kid},
        ),
        "wrong audience": jwt.encode(
            {**good, "aud": "elsewhere"},
            api.service.keys.current.private,
            algorithm="EdDSA",
            headers={"kid": kid},
        ),
        "garbage": "not.a.jwt",
    }
    for what, token in forged.items():
        r = api.client.get("/v1/devices", headers=bearer(token))
        assert r.status_code == 401, (what, r.text)
    assert api.client.get("/v1/devices").status_code == 401
    # A valid token without the scope: 403.
    add_operator(api, "viewer", ["devices:read"])
    _, viewer = login(api, "viewer")
    assert viewer["scope"] == "devices:read"
    assert api.client.get("/v1/devices", headers=bearer(viewer["access_token"])).status_code == 200
    r = api.client.post("/v1/devices", json={"id": "dev-x"}, headers=bearer(viewer["access_token"]))
    assert r.status_code == 403 and "admin" in r.json()["detail"]
    r = api.client.post("/v1/devices/dev-x/revoke", headers=bearer(viewer["access_token"]))
    assert r.status_code == 403
    # Asking for less than one has narrows the token.
    _, narrow = login(api, scope="devices:read")
    assert (
        api.client.post(
            "/v1/devices", json={"id": "dev-y"}, headers=bearer(narrow["access_token"])
        ).status_code
        == 403
    )


def test_refresh_tokens_rotate_and_a_reused_one_revokes_the_session(api: Api) -> None:
    _, first = login(api)
    r = api.client.post(
        "/v1/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    )
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert api.client.get("/v1/devices", headers=bearer(second["access_token"])).status_code == 200
    replay = api.client.post(
        "/v1/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    )
    assert replay.status_code == 401
    # The thief's replay revoked the whole family, the legitimate newest token included.
    r = api.client.post(
        "/v1/token", data={"grant_type": "refresh_token", "refresh_token": second["refresh_token"]}
    )
    assert r.status_code == 401


def test_api_keys_are_scoped_exchangeable_and_revocable(api: Api) -> None:
    r = api.client.post(
        "/v1/api-keys", json={"name": "nightly export", "scopes": ["devices:read"]}, headers=api.admin()
    )
    assert r.status_code == 201, r.text
    key = r.json()["key"]
    key_id = r.json()["id"]
    assert key.startswith("eak_")
    listed = api.client.get("/v1/api-keys", headers=api.admin()).json()
    assert [k["id"] for k in listed] == [key_id] and "key" not in listed[0]
    assert api.client.get("/v1/devices", headers=bearer(key)).status_code == 200
    assert api.client.post("/v1/devices", json={"id": "d"}, headers=bearer(key)).status_code == 403
    r = api.client.post("/v1/token", data={"grant_type": "client_credentials", "client_secret": key})
    assert r.status_code == 200 and r.json()["scope"] == "devices:read" and r.json()["refresh_token"] is None
    assert api.client.get("/v1/devices", headers=bearer(r.json()["access_token"])).status_code == 200
    assert (
        api.client.post(
            "/v1/token", data={"grant_type": "client_credentials", "client_secret": key + "x"}
        ).status_code
        == 401
    )
    assert api.client.delete(f"/v1/api-keys/{key_id}", headers=api.admin()).status_code == 204
    assert api.client.get("/v1/devices", headers=bearer(key)).status_code == 401
    actions = [e["action"] for e in api.client.get("/v1/audit", headers=api.admin()).json()]
    assert "api_key.issued" in actions and "api_key.revoked" in actions


def test_brute_force_is_limited_per_account_and_per_address(api: Api) -> None:
    for _ in range(5):
        assert login(api, password="wrong guess 123")[0] == 401
    r = api.client.post(
        "/v1/token", data={"grant_type": "password", "username": ADMIN, "password": ADMIN_PASSWORD}
    )
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0  # even the right password, while locked
    # Spraying other accounts from the same address hits the address limit.
    codes = [login(api, f"user{i}", "wrong guess 123")[0] for i in range(20)]
    assert codes.count(429) >= 5 and 500 not in codes
    # The window passes (injected clock): the account can log in again.
    api.service.clock.advance(901)  # type: ignore[attr-defined]
    assert login(api)[0] == 200
    assert "login.failed" in [
        e["action"] for e in api.client.get("/v1/audit?limit=1000", headers=api.admin()).json()
    ]


def test_device_lifecycle_is_audited(api: Api) -> None:
    assert api.client.post("/v1/devices", json={"id": "dev-1"}, headers=api.admin()).status_code == 201
    assert api.client.post("/v1/devices", json={"id": "dev-1"}, headers=api.admin()).status_code == 409
    assert api.client.post("/v1/devices", json={"id": "ingest"}, headers=api.admin()).status_code == 422
    assert api.client.post("/v1/devices", json={"id": "bad/id"}, headers=api.admin()).status_code == 422
    assert api.client.post("/v1/devices/dev-1/disable", headers=api.admin()).json()["status"] == "disabled"
    assert api.client.post("/v1/devices/dev-1/enable", headers=api.admin()).json()["status"] == "pending"
    assert api.client.post("/v1/devices/dev-1/revoke", headers=api.admin()).json()["status"] == "revoked"
    assert api.client.post("/v1/devices/dev-1/enable", headers=api.admin()).status_code == 409
    assert api.client.get("/v1/devices/nope", headers=api.admin()).status_code == 404
    actions = [e["action"] for e in api.client.get("/v1/audit", headers=api.admin()).json()]
    for action in (
        "device.created",
        "device.disabled",
        "device.enabled",
        "device.revoked",
        "enrollment_token.issued",
    ):
        assert action in actions
