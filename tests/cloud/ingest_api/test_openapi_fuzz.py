"""schemathesis against the ingest's OpenAPI spec: no generated request gets a 500, and every
status code and body is one the spec declares (bounded: a few examples per operation).

Runs with an admin token (so the handlers are reached, not only the 401 path) over a
database holding a device's readings, test results, alarms and gap, on SQLite and
PostgreSQL (PostgreSQL refuses NUL bytes in text, a classic source of 500s)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance
from sqlalchemy.engine import Engine

from edge_cloud.ingest.acks import DeviceAck
from edge_cloud.ingest.api.app import create_app
from edge_cloud.ingest.api.state import ApiState
from edge_cloud.ingest.consumer import IngestMetrics
from edge_cloud.ingest.importing import Importer
from edge_cloud.ingest.store import Store
from tests.cloud.ingest_write.helpers import Device, ingest_settings, migrated, work
from tests.cloud.ingest_write.test_import import Tokens

ADMIN_HEADERS: dict[str, str] = {}


@schemathesis.serializer("application/x-ndjson")
def _ndjson(_ctx: Any, value: Any) -> bytes:
    """POST /v1/import's body: an export file, any bytes (the fuzz sends what it makes)."""
    return value if isinstance(value, bytes) else str(value).encode()


class NoAcks:
    def publish_acks(self, acks: list[DeviceAck]) -> int:
        return len(acks)


def seeded(engine: Engine) -> Store:
    store = Store(engine, quarantine_rows=100)
    device = Device("site-1")
    events = device.readings(20)
    events.append(device.event("test_result", {"test": "range", "kind": "range", "status": "fail"}))
    events.append(device.event("alarm", {"code": "over_range", "state": "raised"}))
    device.next_seq += 5  # a hole
    events.append(
        device.event(
            "gap", {"epoch": device.epoch, "first_seq": 23, "last_seq": 25, "count": 3, "reason": "size_cap"}
        )
    )
    store.write(work(device.message(events)))
    return store


@pytest.fixture
def engine(database_url: str, tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'ingest.db'}" if database_url.startswith("sqlite") else database_url
    with migrated(url) as e:
        yield e


@pytest.fixture
def openapi_schema(engine: Engine, tmp_path: Path) -> Any:
    tokens = Tokens()
    ADMIN_HEADERS.clear()
    ADMIN_HEADERS.update(tokens.token("admin", ttl=3600))
    settings_ = ingest_settings(tmp_path, str(engine.url))
    store = seeded(engine)
    importer = Importer(store, NoAcks(), IngestMetrics(), settings_)
    state = ApiState(settings=settings_, engine=engine, token_verifier=tokens.verifier, importer=importer)
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(state))


schema = schemathesis.pytest.from_fixture("openapi_schema")


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error(case: Any) -> None:
    case.call_and_validate(
        headers=ADMIN_HEADERS,
        checks=[not_a_server_error, status_code_conformance, response_schema_conformance],
    )


@schema.include(path_regex="/readings$").parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_readings_of_the_seeded_device_get_no_server_error(case: Any) -> None:
    """The readings route over a device that has readings (the generated device ids are
    unknown ones, answered 404 before any query runs): windows, buckets, orders, cursors."""
    case.path_parameters = {**(case.path_parameters or {}), "device_id": "site-1"}
    case.call_and_validate(
        headers=ADMIN_HEADERS,
        checks=[not_a_server_error, status_code_conformance, response_schema_conformance],
    )
