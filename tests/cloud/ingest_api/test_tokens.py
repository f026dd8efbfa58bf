"""Every route that needs a token refuses the attacks on it, with a real auth service's
tokens verified through its served JWKS; the ingest keeps answering while the auth
service is down, and picks up a key rotation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from edge_cloud.auth.service import AuthService
from edge_cloud.common.jwt_verify import SCOPES
from tests.cloud.ingest_api.real_auth import (
    AuthTokens,
    ingest_behind_auth,
    required_query,
    secured_operations,
)
from tests.cloud.ingest_write.helpers import migrated

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

NARROW_SCOPES = [s for s in SCOPES if s != "admin"]


@pytest.fixture
def api(service: AuthService, tmp_path: Path) -> Iterator[tuple[FastAPI, AuthTokens]]:
    with (
        migrated(f"sqlite:///{tmp_path / 'ingest.db'}") as engine,
        ingest_behind_auth(service, engine, tmp_path) as served,
    ):
        yield served


def call(client: TestClient, method: str, path: str, params: dict[str, str], token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    body = b"{}" if method in ("POST", "PUT", "PATCH") else None
    return client.request(method, path, params=params, headers=headers, content=body).status_code


def test_every_secured_route_refuses_missing_expired_forged_and_alg_none_tokens(
    api: tuple[FastAPI, AuthTokens],
) -> None:
    app, tokens = api
    operations = secured_operations(app)
    assert operations, "the API has routes that need a token"
    attacks = {
        "missing": None,
        "expired": tokens.token("admin", ttl=60, age=3600),
        "not yet valid": tokens.token("admin", age=-3600),
        "wrong signature": tokens.wrong_signature("admin"),
        "alg none": tokens.alg_none("admin"),
        "HS256 keyed with the public key": tokens.hs256_with_the_public_key("admin"),
        "garbage": "not.a.token",
        "truncated": tokens.token("admin")[:-10],
    }
    with TestClient(app) as client:
        for method, path, operation in operations:
            params = required_query(operation)
            for attack, token in attacks.items():
                status = call(client, method, path, params, token)
                assert status == 401, f"{method} {path} with a {attack} token: {status}"


def test_each_secured_route_needs_exactly_its_scope_and_admin_holds_them_all(
    api: tuple[FastAPI, AuthTokens],
) -> None:
    app, tokens = api
    with TestClient(app) as client:
        for method, path, operation in secured_operations(app):
            params = required_query(operation)
            answers = {
                scope: call(client, method, path, params, tokens.token(scope)) for scope in NARROW_SCOPES
            }
            allowed = [scope for scope, status in answers.items() if status not in (401, 403)]
            assert len(allowed) == 1, f"{method} {path}: {answers}"
            assert all(answers[s] == 403 for s in NARROW_SCOPES if s not in allowed), (
                f"{method} {path}: {answers}"
            )
            assert call(client, method, path, params, tokens.token("admin")) not in (401, 403), (
                f"{method} {path}"
            )


def test_the_ingest_keeps_answering_while_the_auth_service_is_down_and_picks_up_a_rotation(
    service: AuthService, tmp_path: Path
) -> None:
    with migrated(f"sqlite:///{tmp_path / 'ingest.db'}") as engine:
        with ingest_behind_auth(service, engine, tmp_path) as (app, tokens):
            method, path, operation = next(op for op in secured_operations(app) if op[0] == "GET")
            params = required_query(operation)
            client = TestClient(app)
            assert call(client, method, path, params, tokens.token("admin")) == 200
            service.rotate_signing_key()
            tokens.jwks_clock.advance(61)  # an unknown kid is looked up at most once a minute
            assert call(client, method, path, params, tokens.token("admin")) == 200
            assert tokens.jwks_fetches() == 2
            fetches = tokens.jwks_fetches()
            forged = tokens.wrong_signature("admin")
        # The auth service is gone: the keys already fetched still verify its tokens.
        assert call(client, method, path, params, tokens.token("admin")) == 200
        assert call(client, method, path, params, forged) == 401
        assert tokens.jwks_fetches() == fetches
