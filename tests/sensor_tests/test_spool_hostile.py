"""The spool under a busy outbox and hostile files: a CLI result is deleted only once
committed, and no file stops the daemon's spool watcher."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from edge_agent.events import NewEvent
from edge_agent.outbox import OutboxWriter
from edge_agent.spool import BAD_DIR, spool_dir, take_spool, write_spool

from ..outbox.helpers import BOOT, open_outbox
from .test_alarms import Clock, alarms_of, make_trust, result


def test_a_spooled_result_the_outbox_could_not_commit_stays_in_the_spool(tmp_path: Path) -> None:
    spooled = NewEvent.now("test_result", "climate", result("fail").event_data(), boot=BOOT)
    path = write_spool(tmp_path, [spooled])

    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db", pragmas={"busy_timeout": 50})
        writer = OutboxWriter(outbox)
        run = asyncio.create_task(writer.run())
        locker = sqlite3.connect(tmp_path / "o.db", isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        # The daemon's producers submit through submit_or_drop: a busy outbox drops.
        assert await take_spool(tmp_path, writer.submit_or_drop) == 0
        assert path.exists(), "the CLI's result was deleted though never committed"
        locker.execute("ROLLBACK")
        locker.close()
        assert await take_spool(tmp_path, writer.submit_or_drop) == 1
        assert not path.exists()
        await writer.stop()
        await run
        stored = [e for e in await outbox.fetch("priority") if e.kind == "test_result"]
        await outbox.close()
        assert [e.envelope["id"] for e in stored] == [spooled.id]

    asyncio.run(main())


def test_the_daemon_keeps_a_spooled_result_the_busy_outbox_refused_and_counts_no_drop(tmp_path: Path) -> None:
    trust, events, _, _ = make_trust(tmp_path, Clock())
    failed = NewEvent.now("test_result", "climate", result("fail").event_data(), boot="b")
    path = write_spool(tmp_path, [failed])

    async def main() -> None:
        outbox = await open_outbox(tmp_path / "o.db", pragmas={"busy_timeout": 50})
        writer = OutboxWriter(outbox)
        run = asyncio.create_task(writer.run())
        trust._commit = writer.submit  # as the daemon builds it (daemon/main.py)
        locker = sqlite3.connect(tmp_path / "o.db", isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        assert await take_spool(tmp_path, trust._take_spooled) == 0
        assert await take_spool(tmp_path, trust._take_spooled) == 0
        assert path.exists() and events == []  # no alarm for a result not recorded yet
        assert writer.dropped == 0 and writer.drops.unannounced == 0  # kept, so not a loss
        locker.execute("ROLLBACK")
        locker.close()
        assert await take_spool(tmp_path, trust._take_spooled) == 1
        assert not path.exists()
        assert [a["state"] for a in alarms_of(events)] == ["raised"]
        await writer.stop()
        await run
        stored = [e.envelope["id"] for e in await outbox.fetch("priority") if e.kind == "test_result"]
        await outbox.close()
        assert stored == [failed.id]

    asyncio.run(main())


def test_hostile_spool_files_go_to_bad_and_the_others_are_taken(tmp_path: Path) -> None:
    good = NewEvent.now("test_result", "climate", result("pass").event_data(), boot="b")
    write_spool(tmp_path, [good])
    directory = spool_dir(tmp_path)
    (directory / "0-deep.json").write_text("[" * 100_000 + "]" * 100_000)
    item = json.loads(json.dumps(json.loads((directory / f"{good.id}.json").read_text())[0]))
    (directory / "0-nan.json").write_text(json.dumps([item | {"id": "x1", "mono": "nan"}]))
    (directory / "0-nandata.json").write_text(json.dumps([item | {"id": "x2", "data": {"v": float("nan")}}]))
    taken: list[NewEvent] = []

    async def submit(event: NewEvent) -> NewEvent:
        taken.append(event)
        return event

    assert asyncio.run(take_spool(tmp_path, submit)) == 1
    assert [e.id for e in taken] == [good.id]
    assert sorted(p.name for p in (directory / BAD_DIR).iterdir()) == [
        "0-deep.json",
        "0-nan.json",
        "0-nandata.json",
    ]


def test_an_oversized_spool_file_goes_to_bad_unread(tmp_path: Path) -> None:
    """A file far larger than any test run writes is not read into memory (a Pi has
    little): with the address space capped, reading it would end the watcher."""
    big = spool_dir(tmp_path) / "big.json"
    big.parent.mkdir()
    with big.open("wb") as f:
        f.truncate(768 * 2**20)  # sparse: no disk used
    code = (
        "import asyncio, resource, sys\n"
        "from pathlib import Path\n"
        "from edge_agent.spool import take_spool\n"
        "async def submit(event): return event\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_AS)\n"
        "used = int(open('/proc/self/statm').read().split()[0]) * resource.getpagesize()\n"
        "resource.setrlimit(resource.RLIMIT_AS, (used + 512 * 2**20, hard))\n"
        "print(asyncio.run(take_spool(Path(sys.argv[1]), submit)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.strip() == "0"
    assert (spool_dir(tmp_path) / BAD_DIR / "big.json").exists()
