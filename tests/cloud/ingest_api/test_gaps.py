"""``GET /v1/devices/{id}/gaps``: missing seqs per epoch from what was received (merged
across transactions, in any order), each part ``evicted`` (a gap event said so) or
``unknown``; paging on ``(epoch, first_seq)``; the arithmetic on its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_cloud.ingest.api.fleet_cursors import encode_key
from edge_cloud.ingest.queries.gaps import missing_ranges
from tests.cloud.ingest_api.fleet_helpers import Fleet, fleet
from tests.cloud.ingest_write.helpers import EPOCH, Device

PATH = "/v1/devices/site-a/gaps"
EPOCH_2 = "0193b2f0-0000-7000-8000-000000000002"


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[Fleet]:
    with fleet(database_url, tmp_path) as f:
        yield f


def seed_first_epoch(f: Fleet) -> None:
    """Received 1-10, 21-30, 41-50 (in three transactions, out of order, with resends);
    the gap event at seq 41 reports 11-15 evicted."""
    d = Device("site-a")
    first = d.readings(10)
    d.next_seq = 21
    second = d.readings(10)
    d.next_seq = 41
    third = [d.event("gap", {"reason": "size_cap", "evicted": [[11, 15]], "count": 5}), *d.readings(9)]
    f.events(d, third)
    f.events(d, first)
    f.events(d, second + first[4:8])


def span(m: dict[str, Any]) -> tuple[int, int, str]:
    return m["first_seq"], m["last_seq"], m["state"]


def test_missing_ranges_are_evicted_or_unknown(world: Fleet) -> None:
    seed_first_epoch(world)
    body = world.ok(PATH)
    assert [span(m) for m in body["missing"]] == [
        (11, 15, "evicted"),
        (16, 20, "unknown"),
        (31, 40, "unknown"),
    ]
    assert [m["count"] for m in body["missing"]] == [5, 5, 10]
    assert body["epochs"] == [
        {"epoch": EPOCH, "received": 30, "last_known_seq": 50, "evicted": 5, "exported": 0, "unknown": 15}
    ]
    assert body["totals"] == {"received": 30, "evicted": 5, "exported": 0, "unknown": 15}
    assert body["next_cursor"] is None
    assert world.ok("/v1/devices/site-a", "devices:read")["evicted_events"] == 5


def test_epochs_holes_at_the_start_evictions_past_the_end_and_older_epochs(world: Fleet) -> None:
    seed_first_epoch(world)
    d = Device("site-a", epoch=EPOCH_2, next_seq=4)
    world.events(
        d,
        [
            *d.readings(3),  # 4-6: 1-3 never arrived
            # Recovered from a quarantined outbox: seqs of the first epoch.
            d.event("gap", {"reason": "disk_full", "evicted": [[51, 60]], "epoch": EPOCH}),
            d.event("gap", {"reason": "age_cap", "evicted": [[2, 2], [9, 12]], "count": 5}),
        ],
    )
    body = world.ok(PATH)
    assert [(m["epoch"], *span(m)) for m in body["missing"]] == [
        (EPOCH, 11, 15, "evicted"),
        (EPOCH, 16, 20, "unknown"),
        (EPOCH, 31, 40, "unknown"),
        (EPOCH, 51, 60, "evicted"),
        (EPOCH_2, 1, 1, "unknown"),
        (EPOCH_2, 2, 2, "evicted"),
        (EPOCH_2, 3, 3, "unknown"),
        (EPOCH_2, 9, 12, "evicted"),
    ]
    assert body["epochs"] == [
        {"epoch": EPOCH, "received": 30, "last_known_seq": 60, "evicted": 15, "exported": 0, "unknown": 15},
        {"epoch": EPOCH_2, "received": 5, "last_known_seq": 12, "evicted": 5, "exported": 0, "unknown": 2},
    ]
    assert body["totals"] == {"received": 35, "evicted": 20, "exported": 0, "unknown": 17}

    only = world.ok(PATH, epoch=EPOCH_2)
    assert [span(m) for m in only["missing"]] == [
        (1, 1, "unknown"),
        (2, 2, "evicted"),
        (3, 3, "unknown"),
        (9, 12, "evicted"),
    ]
    assert only["totals"] == {"received": 5, "evicted": 5, "exported": 0, "unknown": 2}

    # Paging: one range a page, the same ranges in the same order.
    pages = world.walk(PATH, "missing", limit=1)
    assert [len(p) for p in pages] == [1] * 8
    assert [m for p in pages for m in p] == body["missing"]
    pages = world.walk(PATH, "missing", limit=3)
    assert [len(p) for p in pages] == [3, 3, 2]
    assert world.ok(PATH, epoch="no-such-epoch") == {
        "device_id": "site-a",
        "epochs": [],
        "totals": {"received": 0, "evicted": 0, "exported": 0, "unknown": 0},
        "missing": [],
        "next_cursor": None,
    }


def test_a_device_with_no_events_has_no_gaps_and_bad_input_is_refused(world: Fleet) -> None:
    world.status("site-a", online=True, epoch=EPOCH, pending=3)
    assert world.ok(PATH)["missing"] == []
    assert world.get("/v1/devices/site-z/gaps").status_code == 404
    assert world.get(PATH, epoch="a\x01b").status_code == 422
    assert world.get(PATH, epoch="e" * 65).status_code == 422
    assert world.get(PATH, cursor=encode_key("gaps", "e", "1")).status_code == 400
    assert world.get(PATH, cursor=encode_key("gaps", "e", True)).status_code == 400
    assert world.get(PATH, cursor=encode_key("devices", "e")).status_code == 400
    assert world.get(PATH, cursor=encode_key("gaps", "e\x00", 1)).status_code == 400
    assert world.get(PATH, cursor=encode_key("gaps", "e", 1)).status_code == 200
    assert world.get(PATH, None).status_code == 401
    assert world.get(PATH, "devices:read").status_code == 403


def spans(received: list[tuple[int, int]], evicted: list[tuple[int, int]]) -> list[tuple[int, int, str]]:
    return [(m.first_seq, m.last_seq, m.state) for m in missing_ranges("e", received, evicted)]


def test_the_arithmetic() -> None:
    assert spans([], []) == []
    assert spans([(1, 5)], []) == []
    assert spans([(3, 5)], []) == [(1, 2, "unknown")]
    assert spans([], [(1, 4)]) == [(1, 4, "evicted")]
    assert spans([], [(3, 4)]) == [(1, 2, "unknown"), (3, 4, "evicted")]
    # Overlapping and adjacent reports merge; a report over received seqs counts only the missing.
    assert spans([(1, 2), (9, 9)], [(3, 4), (4, 6), (1, 3)]) == [(3, 6, "evicted"), (7, 8, "unknown")]
    # One hole, several reports inside it.
    assert spans([(1, 1), (20, 20)], [(3, 4), (8, 9)]) == [
        (2, 2, "unknown"),
        (3, 4, "evicted"),
        (5, 7, "unknown"),
        (8, 9, "evicted"),
        (10, 19, "unknown"),
    ]
    # One report across several holes.
    assert spans([(1, 1), (5, 5), (9, 9)], [(2, 12)]) == [
        (2, 4, "evicted"),
        (6, 8, "evicted"),
        (10, 12, "evicted"),
    ]
    # Received ranges given unmerged.
    assert spans([(4, 6), (1, 3), (8, 8)], []) == [(7, 7, "unknown")]


def test_exported_seqs_are_neither_evicted_nor_lost_and_arrive_by_import(world: Fleet) -> None:
    """``buffer export --mark-exported`` removed 11-20 into a file: its gap event (reason
    ``exported``) makes them ``exported``, not evicted (``evicted_events`` stays 0); once the
    file is imported they are received and no longer missing."""
    d = Device("site-a")
    first = d.readings(10)
    carried = d.readings(10)
    announced = [d.event("gap", {"reason": "exported", "evicted": [[11, 20]], "count": 10}), *d.readings(4)]
    world.events(d, first + announced)
    body = world.ok(PATH)
    assert [span(m) for m in body["missing"]] == [(11, 20, "exported")]
    assert body["totals"] == {"received": 15, "evicted": 0, "exported": 10, "unknown": 0}
    assert world.ok("/v1/devices/site-a", "devices:read")["evicted_events"] == 0
    world.events(d, carried)  # the import stores them as the consumer would
    body = world.ok(PATH)
    assert body["missing"] == [] and body["totals"]["exported"] == 0 and body["totals"]["received"] == 25
