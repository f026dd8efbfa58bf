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


async def first_start(db: Path) -> int:
    """Open a new outbox and append 5 events; the seq append returned, 0 if the power went first."""
    try:
        outbox = await Outbox.open(db, max_bytes=2**20, max_age_s=3600, boot="b")
    except Exception:  # the power went while opening: nothing was promised
        return 0
    try:
        events = [NewEvent.now("reading", "s", {"x_c": float(i)}, boot="b", clock="synced") for i in range(5)]
        return (await outbox.append(events))[-1].seq
    except Exception:  # ... or while appending
        return 0
    finally:
        with contextlib.suppress(Exception):
            await outbox.close()


async def next_start(db: Path) -> tuple[Path | None, int]:
    outbox = await Outbox.open(db, max_bytes=2**20, max_age_s=3600, boot="b")
    try:
        return outbox.quarantined, outbox.next_seq
    finally:
        await outbox.close()


def writes_to_create(tmp_path: Path) -> int:
    """How many writes a first open plus one append makes (to aim cuts at each of them)."""
    mount = PowerCutMount(tmp_path / "count", tmp_path / "count-mnt")
    try:

        async def scenario() -> None:
            outbox, _ = await commit_events(mount.mountpoint / "state" / "outbox.db", 5)
            await outbox.close()

        asyncio.run(scenario())
        return sum(f["writes"] for f in mount.stats()["files"].values())
    finally:
        mount.unmount()


def test_a_cut_at_any_write_while_the_outbox_is_created_leaves_a_file_that_opens(tmp_path: Path) -> None:
    """Cut at the n-th write of the very first start (creation, WAL switch, migrations, first
    append), for every n: the next start opens the file without quarantine, and whatever
    append had returned is there."""
    require_fuse()
    total = writes_to_create(tmp_path)
    assert total > 10
    # Every write of the creation and the migrations, then a sample of the rest.
    for n in [*range(1, 41), *range(41, total + 1, 4)]:
        disk, mnt = tmp_path / f"disk{n}", tmp_path / "mnt"
        mount = PowerCutMount(disk, mnt)
        mount.arm("", after=n)
        committed = 0

        try:
            committed = asyncio.run(first_start(mnt / "state" / "outbox.db"))
            mount.cut()
            mount.revert("prefix" if n % 2 else "drop", seed=n)
        finally:
            mount.unmount()

        quarantined, next_seq = asyncio.run(next_start(disk / "state" / "outbox.db"))
        assert quarantined is None, f"cut at write {n} of {total}: the next start quarantined the outbox"
        assert next_seq > committed, f"cut at write {n}: committed seq {committed} lost"
