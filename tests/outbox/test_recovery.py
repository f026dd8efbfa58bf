"""Corrupt files at open are quarantined (never deleted) and salvaged; never a crash loop."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.outbox import Outbox, salvage
from edge_protocol.wire import Envelope

from .helpers import BOOT, alarm, check_wire, open_outbox, reading, seqs

N_EVENTS = 3000


def _build(path: Path, n: int = N_EVENTS) -> tuple[str, dict[str, dict[str, object]]]:
    """An outbox with ``n`` events, closed cleanly; returns its epoch and envelopes by id."""

    async def main() -> tuple[str, dict[str, dict[str, object]]]:
        outbox = await open_outbox(path)
        stored = []
        for start in range(0, n, 500):
            stored += await outbox.append(
                [alarm(i) if i % 100 == 0 else reading(i) for i in range(start, min(n, start + 500))]
            )
        await outbox.append([])
        epoch = outbox.epoch
        await outbox.close()
        return epoch, {str(e.envelope["id"]): e.envelope for e in stored}

    return asyncio.run(main())


def _garbage_in_the_middle(path: Path) -> None:
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.seek(size // 2 // 4096 * 4096)
        f.write(os.urandom(3 * 4096))


def _truncated(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2 + 1234)


def _not_a_database(path: Path) -> None:
    path.write_bytes(b"this is a text file, not SQLite\n" * 200)


def _garbage_header(path: Path) -> None:
    with path.open("r+b") as f:
        f.write(os.urandom(100))


def _foreign_database(path: Path) -> None:
    path.unlink()
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE photos (name TEXT)")
    conn.commit()
    conn.close()


def _newer_schema(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()


def _a_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()
    (path / "something").write_text("an operator's mistake")


CORRUPTIONS: dict[str, Callable[[Path], None]] = {
    "garbage in the middle": _garbage_in_the_middle,
    "truncated": _truncated,
    "not a database": _not_a_database,
    "garbage header": _garbage_header,
    "foreign database": _foreign_database,
    "newer schema": _newer_schema,
    "a directory": _a_directory,
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_corrupt_file_is_quarantined_and_a_fresh_outbox_starts(
    tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "outbox.db"
    old_epoch, _ = _build(path, 1500)
    CORRUPTIONS[kind](path)
    damaged = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None

    async def main() -> None:
        with caplog.at_level(logging.ERROR, logger="edge_agent.outbox"):
            outbox = await open_outbox(path)
        assert outbox.quarantined is not None
        # Kept, byte for byte, beside the new file, with a UTC timestamp in its name.
        assert outbox.quarantined.parent == tmp_path
        assert outbox.quarantined.name.startswith("outbox.db.corrupt-") and outbox.quarantined.name.endswith(
            "Z"
        )
        if damaged is not None:
            assert hashlib.sha256(outbox.quarantined.read_bytes()).hexdigest() == damaged
        else:
            assert (outbox.quarantined / "something").exists()
        assert outbox.epoch != old_epoch
        assert "QUARANTINED" in caplog.text and str(outbox.quarantined) in caplog.text
        # The quarantine is announced downstream as the first event of the new epoch.
        [status] = await outbox.fetch("priority")
        envelope = check_wire(status)
        assert envelope.kind == "status" and envelope.seq == 1 and envelope.epoch == outbox.epoch
        assert envelope.data["event"] == "outbox_quarantined"
        assert envelope.data["quarantined_file"] == str(outbox.quarantined)
        if kind in ("garbage in the middle", "foreign database", "newer schema"):
            expected = None if kind == "foreign database" else old_epoch
            assert envelope.data["old_epoch"] == expected
        # And it works.
        assert seqs(await outbox.append([reading(1)])) == [2]
        await outbox.close()
        # The next start finds a healthy file: no second quarantine.
        outbox = await open_outbox(path)
        assert outbox.quarantined is None and outbox.next_seq == 3
        await outbox.close()

    asyncio.run(main())


def test_quarantine_takes_the_wal_along(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    crashed = tmp_path / "crashed.db"

    async def main() -> None:
        outbox = await open_outbox(path)
        await outbox.append([reading(i) for i in range(200)])
        # A copy of the files as a crash would leave them: database + WAL not checkpointed.
        shutil.copyfile(path, crashed)
        shutil.copyfile(f"{path}-wal", f"{crashed}-wal")
        await outbox.close()
        _not_a_database(crashed)
        again = await open_outbox(crashed)
        assert again.quarantined is not None
        assert Path(f"{again.quarantined}-wal").exists()
        assert not Path(f"{crashed}-wal").exists() or Path(f"{crashed}-wal").stat().st_size < 100_000
        await again.close()

    asyncio.run(main())


def test_two_quarantines_in_the_same_second_do_not_collide(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"

    async def main() -> None:
        names = set()
        for _ in range(2):
            _not_a_database(path)
            outbox = await open_outbox(path, wall=lambda: 1_800_000_000.0)
            assert outbox.quarantined is not None
            names.add(outbox.quarantined.name)
            await outbox.close()
        assert len(names) == 2

    asyncio.run(main())


def test_salvage_recovers_the_readable_events_with_their_ids(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    old_epoch, originals = _build(path)
    _garbage_in_the_middle(path)

    async def main() -> None:
        outbox = await open_outbox(path)
        assert outbox.quarantined is not None
        report = await salvage(outbox.quarantined, outbox)
        assert report.old_epoch == old_epoch
        assert report.recovered > N_EVENTS // 2
        assert report.recovered + report.invalid <= report.rows_read <= N_EVENTS
        # The damage was stepped over, and reported in old seqs.
        assert report.unreadable or report.invalid
        assert not report.complete
        for first, last in report.unreadable:
            assert first >= 1 and (last is None or first <= last)

        recovered = await outbox.fetch("readings", limit=10_000) + await outbox.fetch(
            "priority", limit=10_000
        )
        salvaged = [e for e in recovered if e.envelope["id"] in originals]
        assert len(salvaged) == report.recovered
        for event in salvaged:
            envelope = check_wire(event)
            original = originals[envelope.id]
            assert envelope.epoch == outbox.epoch and envelope.seq > 1  # new epoch, new seq
            assert {k: v for k, v in event.envelope.items() if k not in ("seq", "epoch")} == {
                k: v for k, v in original.items() if k not in ("seq", "epoch")
            }
        # Old seq order is kept in the new seqs.
        by_old = sorted(salvaged, key=lambda e: int(originals[str(e.envelope["id"])]["seq"]))  # type: ignore[call-overload]
        assert [e.seq for e in by_old] == sorted(e.seq for e in salvaged)

        # Running it again adds nothing (progress is committed with each batch).
        again = await salvage(outbox.quarantined, outbox)
        assert again.recovered == 0 and again.already_salvaged
        stats = await outbox.stats()
        assert stats.salvaged and stats.salvaged[0]["recovered"] == report.recovered
        await outbox.close()

    asyncio.run(main())


def test_salvage_of_a_truncated_file_and_of_one_with_its_wal(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    _build(path)
    _truncated(path)

    async def main() -> None:
        # Truncated: everything before the cut comes back.
        outbox = await open_outbox(path)
        assert outbox.quarantined is not None
        report = await salvage(outbox.quarantined, outbox)
        assert 0 < report.recovered < N_EVENTS
        await outbox.close()

        # A crashed file whose last commits are only in its WAL: they are salvaged too,
        # and the quarantined files are left untouched.
        live = tmp_path / "live.db"
        source = await open_outbox(live)
        stored = await source.append([reading(i) for i in range(300)])
        shutil.copyfile(live, tmp_path / "crashed.db")
        shutil.copyfile(f"{live}-wal", tmp_path / "crashed.db-wal")
        await source.close()
        before = {p.name: p.read_bytes() for p in tmp_path.glob("crashed.db*")}
        target = await open_outbox(tmp_path / "new.db")
        report = await salvage(tmp_path / "crashed.db", target)
        assert report.complete and report.recovered == 300
        got = await target.fetch("readings", limit=1000)
        assert [e.envelope["id"] for e in got] == [e.envelope["id"] for e in stored]
        assert {p.name: p.read_bytes() for p in tmp_path.glob("crashed.db*")} == before
        assert not list(tmp_path.glob(".salvage-*"))
        await target.close()

    asyncio.run(main())


def test_salvage_of_unreadable_files_reports_instead_of_raising(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db")
        text = tmp_path / "text.db"
        _not_a_database(text)
        report = await salvage(text, outbox)
        assert report.recovered == 0 and report.error is not None
        with pytest.raises(FileNotFoundError):
            await salvage(tmp_path / "missing.db", outbox)
        with pytest.raises(ValueError):
            await salvage(tmp_path / "o.db", outbox)
        await outbox.close()

    asyncio.run(main())


def test_salvaged_gap_events_name_their_old_epoch(tmp_path: Path) -> None:
    async def main() -> None:
        old = await open_outbox(tmp_path / "old.db")
        await old.append([reading(i) for i in range(20)])
        old_epoch = old.epoch
        await old.close()
        old = await open_outbox(tmp_path / "old.db", max_bytes=2000)  # evicts, appends a gap
        await old.close()
        new = await Outbox.open(tmp_path / "new.db", max_bytes=10**9, max_age_s=10**9, boot=BOOT)
        report = await salvage(tmp_path / "old.db", new)
        assert report.complete
        [gap] = [e for e in await new.fetch("priority") if e.kind == "gap"]
        envelope = Envelope.model_validate(gap.envelope)
        assert envelope.data["epoch"] == old_epoch and envelope.epoch == new.epoch
        await new.close()

    asyncio.run(main())


@pytest.mark.parametrize("kind", ["garbage in the middle", "truncated", "garbage header"])
def test_salvage_gets_most_events_back_from_each_kind_of_damage(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "outbox.db"
    _, originals = _build(path)
    CORRUPTIONS[kind](path)

    async def main() -> None:
        outbox = await open_outbox(path)
        assert outbox.quarantined is not None
        report = await salvage(outbox.quarantined, outbox)
        expected = {"garbage in the middle": 0.8, "truncated": 0.4, "garbage header": 0.99}[kind]
        assert report.recovered >= expected * N_EVENTS, report
        if kind != "garbage in the middle":
            assert report.repairs  # the header had to be fixed in the scratch copy
        got = await outbox.fetch("readings", limit=10_000) + await outbox.fetch("priority", limit=10_000)
        assert {e.envelope["id"] for e in got if e.kind != "status"} <= set(originals)
        await outbox.close()

    asyncio.run(main())
