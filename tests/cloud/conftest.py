"""Fixtures for the auth service: settings in a temp dir, the service on SQLite and on
PostgreSQL (a uniquely named database on 127.0.0.1:5432, dropped afterwards; skipped
with a reason if unreachable, a failure under CI), and a TestClient with an admin."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from edge_cloud.auth.api.app import create_app
from edge_cloud.auth.service import AuthService, open_service
from edge_cloud.auth.settings import AuthSettings
from tests.cloud.helpers import ADMIN, ADMIN_PASSWORD, ManualClock, make_settings
from tests.conftest import under_ci

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def postgres_available() -> str | None:
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL on 127.0.0.1:5432 is not reachable ({exc}); start it (trust auth, user postgres)"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_available: str | None
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'auth.db'}"
        return
    if postgres_available:
        if under_ci():
            pytest.fail(f"under CI every dependency must be present: {postgres_available}")
        pytest.skip(postgres_available)
    import psycopg

    name = f"edge_auth_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> AuthSettings:
    return make_settings(tmp_path, database_url)


@pytest.fixture
def service(settings: AuthSettings, clock: ManualClock) -> Iterator[AuthService]:
    svc = open_service(settings, clock=clock)
    try:
        yield svc
    finally:
        svc.close()


@dataclass
class Api:
    client: TestClient
    service: AuthService
    admin_token: str

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}


@pytest.fixture
def api(service: AuthService) -> Iterator[Api]:
    from edge_cloud.auth import operators

    with service.transaction() as conn:
        operators.create_operator(
            conn, username=ADMIN, password=ADMIN_PASSWORD, scopes=["admin"], now=service.now(), actor="test"
        )
    with TestClient(create_app(service)) as client:
        r = client.post(
            "/v1/token", data={"grant_type": "password", "username": ADMIN, "password": ADMIN_PASSWORD}
        )
        assert r.status_code == 200, r.text
        yield Api(client, service, r.json()["access_token"])
