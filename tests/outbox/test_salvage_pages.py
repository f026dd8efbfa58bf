"""Salvage when SQLite cannot open the file at all: the events come from the leaf pages.

The rates asserted here are the ones docs/DURABILITY.md states (bench/salvage_rates.py
prints them).  Both page sizes: the outbox's page size is a setting, the walker must not
assume one."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.outbox.page_walk import walk

from .damage import build, recovery

MINIMUM = {
    # (damage, page size): lowest share of the 1,003 events salvaged
    ("first 512 B", 4096): 1.0,
    ("first 4 KiB", 4096): 1.0,
    ("first 64 KiB", 4096): 0.9,  # 16 of ~100 pages lost, some of them schema and index pages
    ("random pages", 4096): 0.9,  # one page in twenty
    ("first 512 B", 1024): 1.0,
    ("first 4 KiB", 1024): 1.0,
    ("first 64 KiB", 1024): 0.8,  # 64 of ~400 pages lost
    ("random pages", 1024): 0.9,
}


@pytest.mark.parametrize(("kind", "page_size"), list(MINIMUM))
def test_salvage_recovery_rate_by_damage(tmp_path: Path, kind: str, page_size: int) -> None:
    rate, report = recovery(tmp_path, kind, page_size)
    assert rate >= MINIMUM[kind, page_size], report
    assert report.invalid == 0
    if kind.startswith("first"):
        assert any(f"{page_size}-byte pages" in r for r in report.repairs), report.repairs


def test_the_walker_finds_every_event_at_every_page_size(tmp_path: Path) -> None:
    for page_size in (512, 1024, 4096, 8192, 65536):
        path = tmp_path / f"{page_size}.db"
        build(path, page_size, n=300)
        found = walk(path)
        assert found.page_size == page_size and sorted(found.rows) == list(range(1, 301))
