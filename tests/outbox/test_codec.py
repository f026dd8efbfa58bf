"""The stored form: both JSON backends give the wire envelope, byte counts that match."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.events import NewEvent
from edge_agent.outbox import codec

from .helpers import BOOT, check_wire, open_outbox

BACKENDS = ["json"] + (["orjson"] if codec._orjson_backend() is not None else [])

EVENTS = [
    NewEvent.now(
        "reading", "climate", {"temperature": 21.864864864864863, "humidity": 45.0, "n": 3}, boot=BOOT
    ),
    NewEvent.now("alarm", "air", {"over": "pm2_5", "text": 'ünïcödé ✓ "quoted" \\ \n'}, boot=BOOT),
    NewEvent.now(
        "status", None, {"nested": {"list": [1, 2.5, None, True]}, "empty": {}}, boot=BOOT, clock="unsynced"
    ),
    NewEvent.now("test_result", "soil", {}, boot=BOOT, mono=0.0),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    before = codec.BACKEND
    codec.use_backend(request.param)
    yield str(request.param)
    codec.use_backend(before)


def test_body_is_the_compact_json_of_the_envelope(backend: str) -> None:
    for seq, event in enumerate(EVENTS, 1):
        body, size = codec.encode(event, "epoch-1").body(seq * 1000)
        envelope = codec.envelope_of(event, seq * 1000, "epoch-1")
        assert json.loads(body) == envelope
        assert list(json.loads(body)) == list(envelope)  # documented key order
        assert body == json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)
        assert size == len(body.encode())
        assert codec.decode(body, size).envelope == envelope


@pytest.mark.parametrize("data", [{"v": float("nan")}, {"v": float("inf")}, {"deep": [{"v": -float("inf")}]}])
def test_non_finite_values_are_refused(backend: str, data: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        codec.encode(NewEvent.now("reading", "s", data, boot=BOOT), "e")


def test_the_outbox_works_with_either_backend(backend: str, tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db")
        stored = await outbox.append(EVENTS)
        fetched = await outbox.fetch("priority") + await outbox.fetch("readings")
        assert sorted(e.seq for e in fetched) == [e.seq for e in stored]
        for event in fetched:
            check_wire(event)
            assert event.envelope == stored[event.seq - 1].envelope
        await outbox.close()

    asyncio.run(main())


@pytest.mark.parametrize("sizes", [[1], [127, 1], [128], [129, 255, 256, 257], [1000, 3]])
def test_batches_of_any_size_are_stored_whole_and_in_order(tmp_path: Path, sizes: list[int]) -> None:
    """Appends go in as multi-row INSERTs of up to ROWS_PER_STATEMENT rows plus the rest."""

    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db")
        made: list[NewEvent] = []
        for size in sizes:
            batch = [
                NewEvent.now(
                    "reading", f"s{i % 3}", {"i": len(made) + i, "v": (len(made) + i) / 7}, boot=BOOT
                )
                for i in range(size)
            ]
            stored = await outbox.append(batch)
            assert [e.seq for e in stored] == list(range(len(made) + 1, len(made) + size + 1))
            made += batch
        fetched = await outbox.fetch("readings", limit=10**6)
        assert [e.seq for e in fetched] == list(range(1, len(made) + 1))
        for event, new in zip(fetched, made, strict=True):
            assert event.envelope == codec.envelope_of(new, event.seq, outbox.epoch)
            check_wire(event)
        assert outbox.pending_count == len(made)
        assert outbox.pending_bytes == sum(e.size for e in fetched)
        await outbox.close()

    asyncio.run(main())


@pytest.mark.parametrize(
    "change",
    [
        {"ts": None},
        {"id": 5},
        {"data": {"x": object()}},
        {"data": [1]},
        {"mono": float("nan")},
        {"clock": "x"},
    ],
)
def test_an_event_without_a_wire_form_is_refused_with_value_error(
    backend: str, change: dict[str, object]
) -> None:
    """ValueError (what submit_or_drop counts and drops), never another exception."""
    event = dataclasses.replace(NewEvent.now("reading", "s", {"v": 1.0}, boot=BOOT), **change)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        codec.encode(event, "e")


@pytest.mark.parametrize(
    "change",
    [
        {"sensor": b"s"},
        {"boot": b"boot"},
        {"sensor": 5},
        {"boot": None},
        {"kind": ["reading"]},
        {"mono": None},
        {"mono": 10**400},
        {"mono": "1.5"},
    ],
)
def test_wrong_typed_fields_are_refused_with_value_error(change: dict[str, object]) -> None:
    event = dataclasses.replace(NewEvent.now("reading", "s", {"v": 1.0}, boot=BOOT), **change)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        codec.encode(event, "e")
