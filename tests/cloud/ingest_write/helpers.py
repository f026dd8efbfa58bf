"""Envelopes, batches and settings for the ingest write-path tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from edge_cloud.common.db import make_engine
from edge_cloud.ingest import migrate
from edge_cloud.ingest.settings import IngestSettings
from edge_cloud.ingest.store import EventsMessage, Work
from edge_protocol.wire import ENVELOPE_DICT, encode_batch, rfc3339_ms, uuid7

EPOCH = "0193b2f0-0000-7000-8000-000000000001"
BOOT = "6f1d8a0e-2b1c-4f3e-9a55-1c0f4b7d2e11"
T0 = datetime(2026, 11, 25, 13, 0, tzinfo=UTC)


@dataclass
class Device:
    """Makes a device's events: seqs count up, ids are UUIDv7 of the event time."""

    device_id: str
    epoch: str = EPOCH
    next_seq: int = 1
    t: datetime = T0
    made: list[dict[str, Any]] = field(default_factory=list)

    def event(
        self, kind: str = "reading", data: dict[str, Any] | None = None, *, sensor: str | None = "climate"
    ) -> dict[str, Any]:
        if data is None:
            data = {"temperature_c": 19.5 + self.next_seq / 100, "pressure_pa": 101211.4}
        if kind == "gap":
            sensor = None
        self.t += timedelta(seconds=1)
        envelope = {
            "id": uuid7(int(self.t.timestamp() * 1000)),
            "seq": self.next_seq,
            "epoch": self.epoch,
            "boot": BOOT,
            "kind": kind,
            "sensor": sensor,
            "ts": rfc3339_ms(self.t),
            "clock": "synced",
            "mono": 100.0 + self.next_seq,
            "data": data,
        }
        self.next_seq += 1
        self.made.append(envelope)
        return envelope

    def readings(self, n: int) -> list[dict[str, Any]]:
        return [self.event() for _ in range(n)]

    def payload(self, envelopes: list[dict[str, Any]], compression: str = "none") -> bytes:
        return encode_batch(self.device_id, envelopes, compression)  # type: ignore[arg-type]

    def message(self, envelopes: list[dict[str, Any]], at: datetime | None = None) -> EventsMessage:
        return EventsMessage(
            self.device_id,
            [ENVELOPE_DICT.validate_python(e) for e in envelopes],
            at or datetime.now(UTC),
        )


def work(*messages: EventsMessage) -> Work:
    return Work(events=list(messages))


@contextmanager
def migrated(url: str) -> Iterator[Engine]:
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
        yield engine
    finally:
        engine.dispose()


def count(engine: Engine, table: str, where: str = "") -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table} {where}")).scalar_one())


def ingest_settings(tmp_path: Path, database_url: str, **sections: Any) -> IngestSettings:
    values: dict[str, Any] = {"state_dir": tmp_path / "ingest-state", "database": {"url": database_url}}
    for key, value in sections.items():
        values[key] = value
    return IngestSettings.model_validate(values)


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
