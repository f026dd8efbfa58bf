"""The dashboard's login and scopes over HTTP (the pages themselves: the browser test):
the password goes to a real auth service, the token comes back only as an HttpOnly,
SameSite=Strict cookie, pages without it ask to log in, fragments answer 401, a scope
the token lacks is no session, and a cross-site form post is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from edge_cloud.auth import operators
from edge_cloud.auth.service import AuthService
from edge_cloud.ingest.dashboard.session import COOKIE
from tests.cloud.ingest_api.real_auth import ingest_behind_auth
from tests.cloud.ingest_write.helpers import migrated

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

PASSWORD = "correct horse battery staple"
ACCOUNTS = {
    "operator": ["devices:read", "devices:write"],
    "viewer": ["devices:read"],
    "reader": ["events:read"],
}


@pytest.fixture
def client(service: AuthService, tmp_path: Path) -> Iterator[TestClient]:
    with service.transaction() as conn:
        for name, scopes in ACCOUNTS.items():
            operators.create_operator(
                conn, username=name, password=PASSWORD, scopes=scopes, now=service.now(), actor="test"
            )
    with (
        migrated(f"sqlite:///{tmp_path / 'ingest.db'}") as engine,
        ingest_behind_auth(service, engine, tmp_path) as (app, _tokens),
        TestClient(app, base_url="http://127.0.0.1", follow_redirects=False) as http,
    ):
        yield http


def login(http: TestClient, user: str, password: str = PASSWORD, **headers: str) -> str:
    r = http.post("/ui/login", data={"username": user, "password": password}, headers=headers)
    return r.headers.get("set-cookie", "") if r.status_code == 303 else f"{r.status_code}: {r.text}"


def test_without_a_session_pages_ask_to_log_in_and_fragments_answer_401(client: TestClient) -> None:
    for page in ("/ui/fleet", "/ui/alarms", "/ui/devices/site-1"):
        r = client.get(page)
        assert (r.status_code, r.headers["location"]) == (303, "/ui/login"), page
    for fragment in ("/ui/fleet/rows", "/ui/alarms/rows", "/ui/devices/site-1/live"):
        assert client.get(fragment).status_code == 401, fragment
    assert client.get("/ui/devices/site-1/series", params={"sensor": "a", "quantity": "b"}).status_code == 401
    assert client.get("/ui/login").status_code == 200
    assert client.get("/ui/static/uPlot.iife.min.js").status_code == 200
    assert client.get("/ui/static/uPlot.LICENSE").text.startswith("The MIT License")


def test_the_token_comes_back_only_as_an_http_only_strict_cookie(client: TestClient) -> None:
    refused = login(client, "operator", "not the password at all")
    assert refused.startswith("401:") and 'id="login-error"' in refused, refused  # the auth service's reason
    cookie = login(client, "operator")
    assert cookie.startswith(f"{COOKIE}=")
    attributes = {a.strip().split("=")[0].lower(): a for a in cookie.split(";")}
    assert {"httponly", "samesite", "path", "max-age"} <= attributes.keys()
    assert (
        attributes["samesite"].strip().lower() == "samesite=strict"
        and attributes["path"].strip() == "Path=/ui"
    )
    page = client.get("/ui/fleet")
    assert page.status_code == 200 and "No device has sent anything yet" in page.text
    assert "eyJ" not in page.text  # the token is not in the page either
    client.post("/ui/logout")
    assert client.get("/ui/fleet").status_code == 303


def test_scopes_a_cross_site_post_and_a_write_without_devices_write(client: TestClient) -> None:
    assert login(client, "reader").startswith(f"{COOKIE}=")  # a valid token without devices:read
    assert client.get("/ui/fleet").status_code == 303
    r = client.post(
        "/ui/login",
        data={"username": "operator", "password": PASSWORD},
        headers={"Origin": "http://evil.test"},
    )
    assert r.status_code == 403
    assert login(client, "viewer").startswith(f"{COOKIE}=")
    assert client.get("/ui/fleet").status_code == 200
    r = client.post("/ui/devices/site-1/run-test", data={"test": ""})
    assert (r.status_code, r.headers["location"]) == (303, "/ui/login")


def test_a_cross_site_post_does_not_log_the_operator_out(client: TestClient) -> None:
    assert login(client, "viewer").startswith(f"{COOKIE}=")
    r = client.post("/ui/logout", headers={"Origin": "http://evil.test"})
    assert r.status_code == 403 and COOKIE not in r.headers.get("set-cookie", "")
    assert client.get("/ui/fleet").status_code == 200  # still logged in
    r = client.post("/ui/logout", headers={"Origin": "http://127.0.0.1"})
    assert (r.status_code, r.headers["location"]) == (303, "/ui/login")
