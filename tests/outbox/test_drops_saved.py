"""Unannounced drops kept across a stop (edge_agent.outbox.drops_saved), on real files."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from edge_agent.events import NewEvent
from edge_agent.outbox.drops import DropLedger, announce_once
from edge_agent.outbox.drops_saved import (
    carry_saved_drops,
    keep_unannounced_drops,
    load_drops,
    saved_drops_file,
)
from edge_agent.outbox.errors import OutboxLockedError
from tests.outbox.helpers import reading


def _gap(data: dict[str, Any]) -> NewEvent:
    return NewEvent.now("gap", None, data, boot="test-boot", clock="synced")


def test_saved_drops_are_carried_into_the_next_ledger_and_the_file_goes_once_announced(
    tmp_path: Path,
) -> None:
    async def go() -> list[dict[str, Any]]:
        before = DropLedger()
        for i in range(3):
            before.dropped(reading(i), OutboxLockedError("locked"))
        keep_unannounced_drops(tmp_path, before)
        assert saved_drops_file(tmp_path).exists()

        after = DropLedger()
        carry_saved_drops(tmp_path, after)
        after.dropped(reading(9), OutboxLockedError("locked"))  # one of its own
        assert after.carried == 3 and after.unannounced == 4 and after.total == 1
        committed: list[dict[str, Any]] = []

        async def refuse(event: NewEvent) -> None:
            raise OutboxLockedError("still locked")

        async def commit(event: NewEvent) -> None:
            committed.append(event.data)

        assert not await announce_once(after, refuse, _gap)
        assert saved_drops_file(tmp_path).exists()  # not announced: still kept
        assert await announce_once(after, commit, _gap)
        assert not saved_drops_file(tmp_path).exists()
        assert after.carried == 0 and after.unannounced == 0 and after.announced == 4
        return committed

    (data,) = asyncio.run(go())
    assert data["count"] == 4 and data["dropped"] == {"outbox_busy": 4}


@pytest.mark.parametrize(
    "text", ["", "{", "[]", '{"dropped": 3}', '{"dropped": {"outbox_busy": "x"}}', '{"dropped": {"nope": 2}}']
)
def test_a_file_that_is_not_a_saved_count_is_ignored(tmp_path: Path, text: str) -> None:
    saved_drops_file(tmp_path).write_text(text)
    assert load_drops(tmp_path) is None
    ledger = DropLedger()
    carry_saved_drops(tmp_path, ledger)
    assert ledger.unannounced == 0


def test_nothing_unannounced_writes_no_file(tmp_path: Path) -> None:
    keep_unannounced_drops(tmp_path, DropLedger())
    assert not saved_drops_file(tmp_path).exists()
