"""``POST /v1/import``: a real ``edge-agent buffer export`` file, stored once (with what
came over MQTT), acknowledged to the device; bad lines refused alone; not an export refused."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from fastapi.testclient import TestClient
from jwt.algorithms import OKPAlgorithm
from sqlalchemy.engine import Engine

from edge_cloud.common.jwt_verify import JWTVerifier
from edge_cloud.ingest.api.routes import imports
from edge_cloud.ingest.consumer import IngestMetrics
from edge_cloud.ingest.importing import Importer
from edge_cloud.ingest.store import DeviceAck, Store
from tests.cloud.ingest_write.conftest import consumer_settings, running
from tests.cloud.ingest_write.helpers import Device, count, ingest_settings
from tests.cloud.ingest_write.processes import agent_config
from tests.cloud.ingest_write.publisher import DevicePublisher, wait_for
from tests.daemon.agent_process import pending, start_agent, stop_agent
from tests.mosquitto import Mosquitto, free_port


class Tokens:
    """Ed25519 tokens as the auth service makes them, and the verifier that trusts them."""

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        jwk = json.loads(OKPAlgorithm.to_jwk(self.key.public_key()))
        self.verifier = JWTVerifier(
            {"keys": [jwk | {"kid": "k1"}]}, issuer="edge-auth", audience="edge-cloud"
        )

    def token(self, scope: str, *, ttl: int = 60) -> dict[str, str]:
        now = int(time.time())
        claims = {
            "iss": "edge-auth",
            "aud": "edge-cloud",
            "sub": "technician",
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": str(uuid.uuid4()),
            "scope": scope,
        }
        return {
            "Authorization": "Bearer "
            + jwt.encode(claims, self.key, algorithm="EdDSA", headers={"kid": "k1"})
        }


class RecordedAcks:
    def __init__(self) -> None:
        self.acks: list[DeviceAck] = []

    def publish_acks(self, acks: Any) -> int:
        self.acks.extend(acks)
        return len(acks)


def app_with(importer: Importer, tokens: Tokens) -> FastAPI:
    app = FastAPI()
    app.include_router(imports.router)
    app.state.importer = importer
    app.state.token_verifier = tokens.verifier
    return app


@pytest.fixture
def tokens() -> Tokens:
    return Tokens()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, int]]:
    """A real export: an agent that never reached a broker, stopped, then ``buffer export``."""
    directory = tmp_path_factory.mktemp("usb")
    nobody = Mosquitto(directory / "unused")  # a port where no broker listens
    nobody.port = free_port()
    config = agent_config(directory, nobody, "remote-site")
    db = directory / "state" / "outbox.db"
    agent = start_agent(config, directory / "agent.log")
    try:
        wait_for(lambda: pending(db) >= 60, 30, "events in the outbox")
    finally:
        assert stop_agent(agent) == 0
    out = directory / "events.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "edge_agent", "buffer", "export", "--out", str(out), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    epoch = json.loads(out.read_text().splitlines()[0])["epoch"]
    yield out, epoch, len(out.read_text().splitlines())


def test_an_export_file_is_stored_once_and_acknowledged_to_the_device(
    tmp_path: Path,
    database_url: str,
    engine: Engine,
    broker: Mosquitto,
    tokens: Tokens,
    exported: tuple[Path, str, int],
) -> None:
    path, epoch, n = exported
    body = path.read_bytes()
    device = DevicePublisher(broker.port, "remote-site")
    settings = consumer_settings(tmp_path, database_url, broker)
    try:
        with running(settings, engine) as consumer:
            importer = Importer(consumer.store, consumer, consumer.metrics, settings)
            client = TestClient(app_with(importer, tokens))
            r = client.post(
                "/v1/import?device_id=remote-site", content=body, headers=tokens.token("devices:write")
            )
            assert r.status_code == 200, r.text
            assert r.json() == {
                "device_id": "remote-site",
                "lines": n,
                "events": n,
                "stored": n,
                "duplicates": 0,
                "refused": 0,
                "acks_published": 1,
                "epochs": [epoch],
            }
            wait_for(lambda: device.acked(epoch) == set(range(1, n + 1)), what="the device's ack")
            # The same file again (a second technician), in small pieces: nothing new.
            pieces = (body[i : i + 777] for i in range(0, len(body), 777))
            r = client.post("/v1/import?device_id=remote-site", content=pieces, headers=tokens.token("admin"))
            assert (r.json()["stored"], r.json()["duplicates"]) == (0, n)
            wait_for(lambda: device.ack_count() == 2, what="acked again")
    finally:
        device.close()
    assert count(engine, "event_ids") == n
    assert count(engine, "received_ranges") == 1


def test_import_needs_a_token_with_devices_write(tmp_path: Path, engine: Engine, tokens: Tokens) -> None:
    settings = ingest_settings(tmp_path, "sqlite://")
    importer = Importer(Store(engine, quarantine_rows=10), RecordedAcks(), IngestMetrics(), settings)
    client = TestClient(app_with(importer, tokens))
    url = "/v1/import?device_id=d-1"
    assert client.post(url, content=b"{}").status_code == 401
    assert client.post(url, content=b"{}", headers={"Authorization": "Bearer nonsense"}).status_code == 401
    assert client.post(url, content=b"{}", headers=tokens.token("devices:write", ttl=-60)).status_code == 401
    assert (
        client.post(url, content=b"{}", headers=tokens.token("devices:read events:read")).status_code == 403
    )
    bare = FastAPI()
    bare.include_router(imports.router)
    bare.state.importer = importer
    r = TestClient(bare).post(url, content=b"{}", headers=tokens.token("admin"))
    assert r.status_code == 503, "no verifier configured: never stores unauthenticated"
    assert count(engine, "event_ids") == 0


def test_bad_lines_are_refused_alone_and_a_file_that_is_no_export_is_refused_whole(
    tmp_path: Path, engine: Engine
) -> None:
    settings = ingest_settings(tmp_path, "sqlite://", consumer={"max_payload_bytes": 4096})
    acks = RecordedAcks()
    importer = Importer(Store(engine, quarantine_rows=100), acks, IngestMetrics(), settings)
    dev = Device("usb-1")
    lines = [json.dumps(e).encode() for e in dev.readings(5)]
    lines[1] = b'{"id": "not an envelope"}'
    lines[3] = b'{"seq": ' + b"9" * 5000 + b"}"  # longer than max_payload_bytes
    bad_value = dev.event(data={"temperature_c": "hot"})
    body = b"\n".join([*lines, json.dumps(bad_value).encode(), b"", b"  "]) + b"\n"
    report = importer.import_bytes("usb-1", body)
    assert (report.lines, report.events, report.stored, report.refused) == (6, 4, 3, 3)
    assert acks.acks == [DeviceAck("usb-1", dev.epoch, ((1, 1), (3, 3), (5, 6)))]
    assert count(engine, "quarantine", "WHERE topic = 'import/usb-1'") == 3
    from edge_cloud.ingest.errors import ImportRefused

    with pytest.raises(ImportRefused, match="not a file written by edge-agent buffer export"):
        importer.import_bytes("usb-1", b"date,temperature\n2026-11-25,19.5\n")
    with pytest.raises(ImportRefused, match="not a device id"):
        importer.import_bytes("no/such id", body)
    assert count(engine, "event_ids") == 3
