"""The outbox's own directory survives a power cut (found by the campaign: it did not).

Committed events are fsynced into the WAL, and SQLite makes the WAL's name durable, but
the state directory's entry in its parent was never fsynced: on a strict file system the
first cut after the first start took the whole outbox with it.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from edge_agent.events import NewEvent
from edge_agent.outbox import read_stats
from edge_agent.outbox.store import Outbox
from tests.powercut.mount import PowerCutMount, require_fuse


async def commit_events(db: Path, n: int) -> tuple[Outbox, int]:
    outbox = await Outbox.open(db, max_bytes=2**20, max_age_s=3600, boot="test-boot")
    events = [
        NewEvent.now("reading", "s", {"x_c": float(i)}, boot="test-boot", clock="synced") for i in range(n)
    ]
    stored = await outbox.append(events)
    return outbox, stored[-1].seq


@pytest.mark.parametrize("precreated", [False, True], ids=["outbox-creates-it", "created-before-by-another"])
def test_committed_events_survive_a_cut_right_after_the_first_start(tmp_path: Path, precreated: bool) -> None:
    require_fuse()
    mount = PowerCutMount(tmp_path / "disk", tmp_path / "mnt")
    state = mount.mountpoint / "var" / "state"
    if precreated:
        state.mkdir(parents=True)  # as the daemon (or an installer) does, without any fsync

    async def scenario() -> int:
        outbox, last = await commit_events(state / "outbox.db", 25)
        mount.cut()
        with contextlib.suppress(Exception):
            await outbox.close()  # on a dead disk: nothing more reaches it
        return last

    try:
        last = asyncio.run(scenario())
        mount.revert()
    finally:
        mount.unmount()
    db = tmp_path / "disk" / "var" / "state" / "outbox.db"
    assert db.exists(), "the outbox vanished with the power: its directory entry was never fsynced"
    stats = read_stats(db)
    assert (stats.next_seq, stats.pending) == (last + 1, 25)
