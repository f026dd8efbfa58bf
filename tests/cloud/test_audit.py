"""The audit log records refusals (failed logins and enrollments, 403s, 429s), successful
logins and the client address of every change — and a flood cannot grow it at will.
On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from edge_cloud.auth import refusals
from edge_cloud.auth.refusals import RefusalLog
from tests.cloud.conftest import Api
from tests.cloud.helpers import ADMIN, csr_pem, new_key
from tests.cloud.served import serve
from tests.cloud.test_tokens import add_operator, bearer, login

CLIENT = "testclient"  # the TestClient's peer address


def entries(api: Api, action: str | None = None) -> list[dict[str, Any]]:
    """Audit rows oldest first, each with its detail parsed."""
    rows = api.client.get("/v1/audit?limit=1000", headers=api.admin()).json()
    out = [{**r, "detail": json.loads(r["detail"]) if r["detail"] else {}} for r in reversed(rows)]
    return [r for r in out if action is None or r["action"] == action]


def test_api_keys_and_a_reused_refresh_token_carry_the_client_address(api: Api) -> None:
    r = api.client.post(
        "/v1/api-keys", json={"name": "export", "scopes": ["devices:read"]}, headers=api.admin()
    )
    key_id = r.json()["id"]
    assert api.client.delete(f"/v1/api-keys/{key_id}", headers=api.admin()).status_code == 204
    _, first = login(api)
    for _ in range(2):  # the second use of the same refresh token is the reuse
        api.client.post(
            "/v1/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
        )
    for action in ("api_key.issued", "api_key.revoked"):
        (row,) = entries(api, action)
        assert (row["actor"], row["target"], row["address"]) == (ADMIN, key_id, CLIENT)
    (reused,) = entries(api, "refresh_token.reused")
    assert (reused["actor"], reused["address"]) == (ADMIN, CLIENT) and "revoked" in reused["detail"]["reason"]


def test_logins_are_audited_success_and_failure(api: Api) -> None:
    assert login(api, password="wrong guess 123")[0] == 401
    assert login(api)[0] == 200
    assert login(api, "nobody", "wrong guess 123")[0] == 401
    rows = [r for r in entries(api) if r["action"].startswith("login.")]
    # The fixture's own login first.
    assert [(r["action"], r["actor"]) for r in rows] == [
        ("login.succeeded", ADMIN),
        ("login.failed", ADMIN),
        ("login.succeeded", ADMIN),
        ("login.failed", "nobody"),
    ]
    assert {r["address"] for r in rows} == {CLIENT}
    assert rows[1]["detail"]["reason"] == "wrong user name or password"
    assert "admin" in rows[2]["detail"]["scopes"]


def _enroll(client: Any, token: str, device_id: str | None = None) -> int:
    body: dict[str, Any] = {"token": token, "csr": csr_pem(new_key())}
    if device_id is not None:
        body["device_id"] = device_id
    return int(client.post("/v1/enroll", json=body).status_code)


def test_failed_enrollments_are_audited_with_who_where_and_why(api: Api) -> None:
    token = api.client.post("/v1/devices", json={"id": "dev-1"}, headers=api.admin()).json()[
        "enrollment_token"
    ]
    api.client.post("/v1/devices", json={"id": "dev-2"}, headers=api.admin())
    assert _enroll(api.client, token, device_id="dev-2") == 403  # another device's token
    assert _enroll(api.client, token) == 200
    assert _enroll(api.client, token) == 403  # reused
    assert _enroll(api.client, "eet_made-up") == 403  # not ours
    rows = entries(api, "enrollment.refused")
    assert [(r["actor"], r["target"], r["address"]) for r in rows] == [
        ("device:dev-1", "dev-2", CLIENT),
        ("device:dev-1", None, CLIENT),
        ("anonymous", None, CLIENT),
    ]
    reasons = [r["detail"]["reason"] for r in rows]
    assert "another device" in reasons[0] and "already used" in reasons[1] and "unknown" in reasons[2]


def test_the_losers_of_an_enrollment_race_are_audited(api: Api) -> None:
    token = api.client.post("/v1/devices", json={"id": "dev-r"}, headers=api.admin()).json()[
        "enrollment_token"
    ]
    contenders = 6
    with (
        serve(api.service) as (url, _recorder),
        httpx.Client(base_url=url) as client,
        ThreadPoolExecutor(contenders) as pool,
    ):
        codes = sorted(pool.map(lambda _: _enroll(client, token), range(contenders)))
    assert codes == [200] + [403] * (contenders - 1)
    rows = entries(api, "enrollment.refused")
    assert len(rows) == contenders - 1
    assert all(r["actor"] == "device:dev-r" and "already used" in r["detail"]["reason"] for r in rows)
    assert len(entries(api, "device.enrolled")) == 1


def test_a_missing_scope_is_audited(api: Api) -> None:
    add_operator(api, "viewer", ["devices:read"])
    _, viewer = login(api, "viewer")
    r = api.client.post("/v1/devices", json={"id": "dev-x"}, headers=bearer(viewer["access_token"]))
    assert r.status_code == 403
    (row,) = entries(api, "access.denied")
    assert (row["actor"], row["target"], row["address"]) == ("viewer", "POST /v1/devices", CLIENT)
    assert "admin" in row["detail"]["reason"]


def test_a_flood_of_429s_writes_a_bounded_number_of_rows_and_counts_the_rest(api: Api) -> None:
    for _ in range(5):
        assert login(api, password="wrong guess 123")[0] == 401
    flood = 3 * refusals.PER_KEY
    codes = [login(api)[0] for _ in range(flood)]
    assert codes == [429] * flood
    limited = entries(api, "access.rate_limited")
    assert len(limited) == refusals.PER_KEY
    assert limited[0]["target"] == "POST /v1/token" and limited[0]["address"] == CLIENT
    assert "too many failed logins" in limited[0]["detail"]["reason"]
    # The next window: the first refusal writes the count of what was left out, then itself.
    api.service.clock.advance(refusals.WINDOW)  # type: ignore[attr-defined]
    assert login(api)[0] == 429
    tail = [r for r in entries(api) if r["action"] in ("access.rate_limited", refusals.SUPPRESSED)][-2:]
    assert [r["action"] for r in tail] == [refusals.SUPPRESSED, "access.rate_limited"]
    assert tail[0]["detail"]["count"] == flood - refusals.PER_KEY
    assert tail[0]["detail"]["actions"] == {"access.rate_limited": flood - refusals.PER_KEY}


def test_refusals_from_many_addresses_are_capped_in_total(api: Api) -> None:
    """A spray from many addresses (each under its own limit) still writes at most TOTAL
    rows a window; a caller's user name is cut to the column and loses its NUL (PostgreSQL)."""
    log = RefusalLog(api.service.engine, api.service.clock)
    before = len(entries(api))
    written = [
        log.record("login.failed", actor="nul\x00" + "x" * 300, address=f"2001:db8::{i:x}", reason="test")
        for i in range(2 * refusals.TOTAL)
    ]
    assert written.count(True) == refusals.TOTAL
    rows = entries(api)[before:]
    assert len(rows) == refusals.TOTAL and {len(r["actor"]) for r in rows} == {128}
    assert all(r["actor"].startswith("nul\ufffdx") for r in rows)
    api.service.clock.advance(refusals.WINDOW)  # type: ignore[attr-defined]
    assert log.record("login.failed", actor=None, address="2001:db8::ffff", reason="test")
    last = entries(api)[-2:]
    assert last[0]["action"] == refusals.SUPPRESSED and last[0]["detail"]["count"] == refusals.TOTAL
    assert last[1]["actor"] == "anonymous"
