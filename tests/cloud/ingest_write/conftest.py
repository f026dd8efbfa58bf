"""Fixtures of the ingest write-path tests: a private Mosquitto, a migrated database
(SQLite and PostgreSQL through ``database_url``), a running consumer, device publishers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from edge_cloud.ingest.consumer import Consumer
from edge_cloud.ingest.settings import IngestSettings
from tests.cloud.ingest_write.helpers import ingest_settings, migrated
from tests.cloud.ingest_write.publisher import DevicePublisher
from tests.mosquitto import Mosquitto


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker") as b:
        yield b


@pytest.fixture
def postgres_url(postgres_available: str | None) -> Iterator[str]:
    """A fresh PostgreSQL database, for what only PostgreSQL has (partitions)."""
    import uuid

    import psycopg

    from tests.cloud.conftest import PG_ADMIN_URL
    from tests.conftest import under_ci

    if postgres_available:
        if under_ci():
            pytest.fail(f"under CI every dependency must be present: {postgres_available}")
        pytest.skip(postgres_available)
    name = f"edge_ingest_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    with migrated(database_url) as e:
        yield e


def consumer_settings(
    tmp_path: Path,
    database_url: str,
    broker: Mosquitto,
    *,
    client_id: str = "ingest-test-1",
    auth: dict[str, Any] | None = None,
    **consumer: Any,
) -> IngestSettings:
    return ingest_settings(
        tmp_path,
        database_url,
        auth=auth or {},
        mqtt={
            "host": "127.0.0.1",
            "port": broker.port,
            "client_id": client_id,
            "keepalive": 5,
            "reconnect_max": 0.5,
            "session_expiry": 600,
        },
        consumer={"batch_max_wait": 0.05, **consumer},
    )


@contextmanager
def running(settings: IngestSettings, engine: Engine, **kwargs: Any) -> Iterator[Consumer]:
    consumer = Consumer(settings, engine, **kwargs)
    consumer.start()
    try:
        assert consumer.wait_connected(10), "the consumer did not connect"
        yield consumer
    finally:
        consumer.stop()


@pytest.fixture
def device(broker: Mosquitto) -> Iterator[Callable[[str], DevicePublisher]]:
    made: list[DevicePublisher] = []

    def make(device_id: str) -> DevicePublisher:
        publisher = DevicePublisher(broker.port, device_id)
        made.append(publisher)
        return publisher

    yield make
    for publisher in made:
        publisher.close()
