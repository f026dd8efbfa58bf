"""The fleet query tests' world: a migrated database (SQLite or PostgreSQL) written through
the real ``Store.write``, and the real app (``create_app``) over it with Ed25519 tokens."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy.engine import Engine

from edge_cloud.ingest.api.app import create_app
from edge_cloud.ingest.api.state import ApiState
from edge_cloud.ingest.store import Outcome, Refusal, StatusMessage, Store, Work
from tests.cloud.ingest_write.helpers import BOOT, Device, ingest_settings, migrated
from tests.cloud.ingest_write.test_import import Tokens

RECEIVED = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)


@dataclass
class Fleet:
    engine: Engine
    store: Store
    tokens: Tokens
    client: TestClient

    def events(self, device: Device, envelopes: list[dict[str, Any]], at: datetime = RECEIVED) -> Outcome:
        return self.store.write(Work(events=[device.message(envelopes, at)]))

    def status(
        self,
        device_id: str,
        *,
        online: bool,
        epoch: str | None = None,
        pending: int | None = None,
        ts: datetime | None = None,
        at: datetime = RECEIVED,
    ) -> None:
        message = StatusMessage(device_id, online, ts, BOOT, epoch, at, retained=False, pending=pending)
        self.store.write(Work(statuses=[message]))

    def refuse(self, *refusals: Refusal) -> None:
        self.store.write(Work(refusals=list(refusals)))

    def get(self, path: str, scope: str | None = "events:read", **params: Any) -> Response:
        headers = self.tokens.token(scope) if scope is not None else {}
        return self.client.get(
            path, params={k: v for k, v in params.items() if v is not None}, headers=headers
        )

    def ok(self, path: str, scope: str = "events:read", **params: Any) -> Any:
        r = self.get(path, scope, **params)
        assert r.status_code == 200, r.text
        return r.json()

    def walk(self, path: str, key: str, scope: str = "events:read", **params: Any) -> list[list[Any]]:
        """Every page of a listing, following ``next_cursor``: the items of each page."""
        pages = []
        cursor = None
        while True:
            body = self.ok(path, scope, cursor=cursor, **params)
            pages.append(body[key])
            cursor = body["next_cursor"]
            if cursor is None:
                return pages
            assert len(pages) < 1000, "the cursor never ends"


@contextmanager
def fleet(database_url: str, tmp_path: Path) -> Iterator[Fleet]:
    with migrated(database_url) as engine:
        tokens = Tokens()
        settings = ingest_settings(tmp_path, database_url)
        app = create_app(ApiState(settings=settings, engine=engine, token_verifier=tokens.verifier))
        with TestClient(app) as client:
            yield Fleet(engine, Store(engine, quarantine_rows=1000), tokens, client)


def run_data(status: str, test: str = "range", sensor: str = "climate") -> dict[str, Any]:
    """A ``test_result`` event's data, as the agent sends it."""
    return {
        "test": test,
        "sensor": sensor,
        "kind": "range",
        "status": status,
        "passed": status == "pass",
        "measured": {"temperature_c": 21.0},
        "limits": {"temperature_c": [-40, 85]},
        "duration_s": 0.2,
        "detail": f"{test} {status}",
        "trigger": "schedule",
    }


def failed_alarm_data(test: str = "range", sensor: str = "climate") -> dict[str, Any]:
    """The alarm a failed test with ``alarm = true`` sends after its ``test_result``."""
    return {
        "code": "sensor_test_failed",
        "test": test,
        "sensor": sensor,
        "kind": "range",
        "detail": "out of range",
    }
