"""schemathesis against the served OpenAPI spec: no generated request gets a 500, and every
status code and body is one the spec declares (bounded: a few examples per operation).

Runs authenticated as an admin (so the handlers are reached, not only the 401 path) on
SQLite and PostgreSQL (PostgreSQL refuses NUL bytes in text, a classic source of 500s)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

from edge_cloud.auth.api.app import create_app
from tests.cloud.conftest import Api

ADMIN_HEADERS: dict[str, str] = {}


@pytest.fixture
def openapi_schema(api: Api) -> Any:
    ADMIN_HEADERS.clear()
    ADMIN_HEADERS.update(api.admin())
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(api.service))


schema = schemathesis.pytest.from_fixture("openapi_schema")


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error(case: Any) -> None:
    case.call_and_validate(
        headers=ADMIN_HEADERS,
        checks=[not_a_server_error, status_code_conformance, response_schema_conformance],
    )
