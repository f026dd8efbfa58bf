"""``GET /v1/quarantine``: refusals made by the consumer's own ``decode`` (and one event
refused by ``Store.write``), stored by ``Store.write``; newest first, filters, paging."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_cloud.ingest.api.fleet_cursors import encode_key
from edge_cloud.ingest.consumer.decode import decode
from edge_cloud.ingest.store import Refusal
from tests.cloud.ingest_api.fleet_helpers import Fleet, fleet
from tests.cloud.ingest_write.helpers import Device

PATH = "/v1/quarantine"
SCOPE = "devices:read"


def refusal(topic: str, payload: bytes, *, max_bytes: int = 10_000) -> Refusal:
    item = decode(
        topic,
        payload,
        content_encoding=None,
        received_at=1_790_000_000.0,
        retained=False,
        max_bytes=max_bytes,
    )
    assert isinstance(item, Refusal), item
    return item


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[tuple[Fleet, list[tuple[str, str | None, bytes]]]]:
    """Five refusals, oldest first: (reason, device, payload)."""
    with fleet(database_url, tmp_path) as f:
        spoof = json.dumps(
            {"schema": 1, "device_id": "site-b", "events": [Device("site-b").event()]}
        ).encode()
        big = b"\x00\xff" * 400
        made: list[tuple[str, str | None, bytes]] = [
            ("malformed", "site-a", b"not json at all"),
            ("spoofed", "site-a", spoof),
            ("oversized", "site-b", big),
            ("malformed", None, b"{}"),
        ]
        topics = [
            "devices/site-a/events",
            "devices/site-a/events",
            "devices/site-b/events",
            "devices/bad id/events",
        ]
        for (_, _, payload), topic in zip(made, topics, strict=True):
            f.refuse(refusal(topic, payload, max_bytes=500))
        d = Device("site-a")
        outcome = f.events(d, [d.event("reading", {"temperature_c": 1.0}, sensor=None), d.event()])
        assert (outcome.stored, len(outcome.refused_events)) == (1, 1)
        made.append(("invalid_event", "site-a", b""))
        yield f, made


def test_newest_first_with_what_was_refused(world: tuple[Fleet, list[tuple[str, str | None, bytes]]]) -> None:
    f, made = world
    body = f.ok(PATH, SCOPE)
    rows = body["quarantine"]
    assert [(q["reason"], q["device_id"]) for q in rows] == [(r, d) for r, d, _ in reversed(made)]
    assert body["next_cursor"] is None
    assert rows == sorted(rows, key=lambda q: -q["id"])
    spoofed = rows[3]
    assert spoofed["topic"] == "devices/site-a/events"
    assert spoofed["size"] == len(made[1][2])
    assert base64.b64decode(spoofed["head_base64"]) == made[1][2][:256]
    assert "site-b" in spoofed["detail"]
    oversized = rows[2]
    assert (oversized["size"], base64.b64decode(oversized["head_base64"])) == (800, made[2][2][:256])
    assert rows[1]["topic"] == "devices/bad id/events"
    assert rows[0]["detail"].endswith("(seq 1): a reading without a sensor")
    assert rows[3]["received_at"] == "2026-09-21T14:13:20Z"


def test_filters_and_paging(world: tuple[Fleet, list[tuple[str, str | None, bytes]]]) -> None:
    f, _ = world
    every = [q["id"] for q in f.ok(PATH, SCOPE)["quarantine"]]
    pages = f.walk(PATH, "quarantine", SCOPE, limit=2)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [q["id"] for p in pages for q in p] == every
    site_a = f.walk(PATH, "quarantine", SCOPE, limit=1, device_id="site-a")
    assert [q[0]["reason"] for q in site_a] == ["invalid_event", "spoofed", "malformed"]
    malformed = f.ok(PATH, SCOPE, reason="malformed")["quarantine"]
    assert [q["device_id"] for q in malformed] == [None, "site-a"]
    assert f.ok(PATH, SCOPE, reason="malformed", device_id="site-b")["quarantine"] == []


def test_refusals_and_scopes(world: tuple[Fleet, list[tuple[str, str | None, bytes]]]) -> None:
    f, _ = world
    assert f.get(PATH, SCOPE, reason="bogus").status_code == 422
    assert f.get(PATH, SCOPE, device_id="bad id").status_code == 422
    assert f.get(PATH, SCOPE, cursor=encode_key("quarantine", "5")).status_code == 400
    assert f.get(PATH, SCOPE, cursor=encode_key("devices", "x")).status_code == 400
    assert f.get(PATH, SCOPE, cursor=encode_key("quarantine", 2**80)).status_code == 400
    assert f.get(PATH, SCOPE, cursor=encode_key("quarantine", 2**63 - 1)).status_code == 200
    assert f.get(PATH, None).status_code == 401
    assert f.get(PATH, "events:read").status_code == 403
    assert f.get(PATH, "devices:write").status_code == 403
