"""``edge-agent buffer stats``, ``export`` (``--mark-exported``) and ``salvage`` as the technician reads them."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner, Result

from edge_agent.cli.app import app
from edge_agent.outbox import read_stats
from edge_protocol.event_data import GapData
from edge_protocol.wire import ENVELOPE_DICT
from tests.outbox.helpers import open_outbox, reading


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "edge-agent.toml"
    config.write_text(f'[device]\nid = "cli-test"\n[storage]\nstate_dir = "{tmp_path / "state"}"\n')
    (tmp_path / "state").mkdir()
    return config


def test_buffer_stats_shows_the_newest_evicted_ranges(tmp_path: Path) -> None:
    config = _config(tmp_path)
    db = tmp_path / "state" / "outbox.db"

    async def fill() -> None:
        # A tiny cap: every append of 20 readings evicts the oldest ones, one range each.
        outbox = await open_outbox(db, max_bytes=6000)
        for batch in range(40):
            await outbox.append([reading(batch * 20 + i) for i in range(20)])
        await outbox.close()

    asyncio.run(fill())
    stats = read_stats(db)
    assert len(stats.evicted_recent) == 20
    firsts = [r.first for r in stats.evicted_recent]
    assert firsts == sorted(firsts), "oldest first, the newest last"
    out = CliRunner().invoke(app, ["buffer", "stats", "--config", str(config)], terminal_width=200)
    assert out.exit_code == 0, out.output
    shown = [(int(a), int(b)) for a, b in re.findall(r"evicted range\s+│?\s*(\d+)–(\d+)", out.output)]
    newest = [(r.first, r.last) for r in stats.evicted_recent[-5:]]
    assert shown == newest, out.output


def test_salvage_names_an_open_ended_unreadable_range_without_a_sentinel(tmp_path: Path) -> None:
    config = _config(tmp_path)
    damaged = tmp_path / "outbox.db.corrupt-1"

    async def build() -> None:
        outbox = await open_outbox(damaged)
        for start in range(0, 1000, 250):
            await outbox.append([reading(i) for i in range(start, start + 250)])
        await outbox.close()

    asyncio.run(build())
    # The last quarter of the file is lost: nothing after the damage can be read by key.
    size = damaged.stat().st_size
    with damaged.open("r+b") as f:
        f.seek(size * 3 // 4 // 4096 * 4096)
        f.write(b"\0" * (size - size * 3 // 4 // 4096 * 4096))
    out = CliRunner().invoke(
        app, ["buffer", "salvage", str(damaged), "--config", str(config)], terminal_width=200
    )
    assert out.exit_code == 0, out.output
    assert str(2**62) not in out.output
    assert "4611686018427387904" not in out.output
    assert re.search(r"unreadable.*\d+–end of file", out.output) or "unreadable" not in out.output, out.output


def _fill(db: Path, n: int) -> None:
    async def go() -> None:
        outbox = await open_outbox(db)
        await outbox.append([reading(i) for i in range(n)])
        await outbox.close()

    asyncio.run(go())


def _export(config: Path, out: Path, *flags: str) -> Result:
    return CliRunner().invoke(
        app, ["buffer", "export", "--out", str(out), *flags, "--config", str(config)], terminal_width=80
    )


def test_export_leaves_the_events_pending_and_mark_exported_removes_them_as_exported_not_lost(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    db = tmp_path / "state" / "outbox.db"
    _fill(db, 30)
    seqs = list(range(1, 31))

    kept = _export(config, tmp_path / "copy.jsonl")
    assert kept.exit_code == 0 and "stay pending" in kept.output, kept.output
    assert read_stats(db).pending == 30

    marked = _export(config, tmp_path / "carried.jsonl", "--mark-exported")
    assert marked.exit_code == 0 and "removed them from the outbox" in marked.output, marked.output
    lines = (tmp_path / "carried.jsonl").read_text().splitlines()
    envelopes = [ENVELOPE_DICT.validate_json(line) for line in lines]
    assert [e["seq"] for e in envelopes] == seqs  # every pending event, in seq order

    # Durable and honest: the file's events left the outbox, counted as exported, not evicted;
    # what is left is the gap event that tells the cloud they come by import.
    stats = read_stats(db)
    assert (stats.pending, stats.pending_by_kind, stats.exported, stats.evicted_total) == (
        1,
        {"gap": 1},
        30,
        0,
    )
    assert [(r.reason, r.first, r.last) for r in stats.evicted_recent] == [("exported", 1, 30)]
    conn = sqlite3.connect(db)
    (body,) = conn.execute("SELECT body FROM events").fetchone()
    conn.close()
    gap = ENVELOPE_DICT.validate_json(body)
    assert gap["seq"] == 31 and gap["epoch"] == envelopes[0]["epoch"]
    assert GapData.model_validate(gap["data"]).model_dump(exclude_none=True) == {
        "reason": "exported",
        "evicted": [(1, 30)],
        "count": 30,
    }
    shown = CliRunner().invoke(app, ["buffer", "stats", "--config", str(config)], terminal_width=80)
    assert re.search(r"exported\s+│?\s*30\b", shown.output) and re.search(r"evicted\s+│?\s*0\b", shown.output)

    # A second export carries only the gap event; nothing is exported twice.
    again = _export(config, tmp_path / "second.jsonl", "--mark-exported")
    assert again.exit_code == 0, again.output
    assert [
        ENVELOPE_DICT.validate_json(x)["seq"] for x in (tmp_path / "second.jsonl").read_text().splitlines()
    ] == [31]
    assert read_stats(db).exported == 31


def test_an_export_of_nothing_writes_no_file_and_leaves_the_name_free(tmp_path: Path) -> None:
    config = _config(tmp_path)
    db = tmp_path / "state" / "outbox.db"
    _fill(db, 0)
    out = tmp_path / "events.jsonl"
    for flags in ((), ("--mark-exported",)):
        empty = _export(config, out, *flags)
        assert empty.exit_code == 0 and "was not written" in " ".join(empty.output.split()), empty.output
        assert not out.exists() and not out.with_name(out.name + ".part").exists()
    assert read_stats(db).exported == 0 and read_stats(db).pending == 0  # no gap event for nothing
    _fill(db, 3)
    later = _export(config, out, "--mark-exported")
    assert later.exit_code == 0 and len(out.read_text().splitlines()) == 3, later.output


def test_mark_exported_refuses_while_the_daemon_holds_the_outbox_and_changes_nothing(tmp_path: Path) -> None:
    config = _config(tmp_path)
    db = tmp_path / "state" / "outbox.db"
    _fill(db, 5)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_OUTBOX, str(db)], stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        out = _export(config, tmp_path / "x.jsonl", "--mark-exported")
    finally:
        holder.communicate("")
    assert out.exit_code == 1 and "stop the daemon first" in out.output, out.output
    assert read_stats(db).pending == 5 and read_stats(db).exported == 0


def test_export_into_a_missing_folder_names_it_and_a_bad_outbox_is_one_line(tmp_path: Path) -> None:
    config = _config(tmp_path)
    missing = _export(config, tmp_path / "stick" / "events.jsonl", "--mark-exported")
    assert missing.exit_code == 1 and f"the folder {tmp_path / 'stick'} does not exist" in " ".join(
        missing.output.split()
    )
    none = _export(config, tmp_path / "events.jsonl", "--mark-exported")  # no outbox yet
    assert none.exit_code == 1 and "no outbox at" in none.output and not (tmp_path / "events.jsonl").exists()
    (tmp_path / "state" / "outbox.db").write_bytes(b"not a database at all" * 100)
    bad = _export(config, tmp_path / "events.jsonl")
    assert bad.exit_code == 1 and "Traceback" not in bad.output, bad.output
    assert not (tmp_path / "events.jsonl").exists() and not (tmp_path / "events.jsonl.part").exists()


HOLD_OUTBOX = """
import asyncio, sys
from tests.outbox.helpers import open_outbox

async def main():
    outbox = await open_outbox(sys.argv[1])
    print("open", flush=True)
    await asyncio.to_thread(sys.stdin.read)
    await outbox.close()

asyncio.run(main())
"""


def test_export_never_replaces_an_existing_file_it_may_be_the_only_copy(tmp_path: Path) -> None:
    """A technician exports with --mark-exported to the stick's events.jsonl, the site runs on,
    and the next visit exports to the same name: the first file held the only copy of its events."""
    config = _config(tmp_path)
    db = tmp_path / "state" / "outbox.db"
    stick = tmp_path / "events.jsonl"
    _fill(db, 30)
    first = _export(config, stick, "--mark-exported")
    assert first.exit_code == 0, first.output
    carried = stick.read_bytes()
    _fill(db, 10)
    for flags in (("--mark-exported",), ()):
        again = _export(config, stick, *flags)
        assert again.exit_code == 1, again.output
        assert f"{stick} already exists" in " ".join(again.output.split()), again.output
        assert stick.read_bytes() == carried and not stick.with_name("events.jsonl.part").exists()
    # Nor the outbox itself, nor a folder (named as one).
    before = db.read_bytes()
    assert _export(config, db).exit_code == 1 and db.read_bytes() == before
    folder = _export(config, tmp_path)
    assert folder.exit_code == 1 and "is a folder" in folder.output, folder.output
    stats = read_stats(db)
    assert (stats.pending, stats.exported) == (11, 30), "nothing removed by the refused export"
    # Every seq is in the first file or still pending, exactly once.
    in_file = [ENVELOPE_DICT.validate_json(x)["seq"] for x in carried.decode().splitlines()]
    conn = sqlite3.connect(db)
    pending = [seq for (seq,) in conn.execute("SELECT seq FROM events ORDER BY seq")]
    conn.close()
    assert sorted(in_file + pending) == list(range(1, 42))


def test_mark_exported_on_a_damaged_outbox_exports_nothing_and_says_so(tmp_path: Path) -> None:
    """Not 'exported 1 pending events' with exit 0 while the 300 real ones sit unexported."""
    config = _config(tmp_path)
    db = tmp_path / "state" / "outbox.db"
    _fill(db, 300)
    size = db.stat().st_size
    with db.open("r+b") as f:
        f.seek(size // 2 // 4096 * 4096)
        f.write(b"\xff" * 4096)
    out = _export(config, tmp_path / "events.jsonl", "--mark-exported")
    assert out.exit_code == 1, out.output
    text = " ".join(out.output.split())
    assert "damaged" in text and "nothing exported" in text and "buffer salvage" in text, text
    assert not (tmp_path / "events.jsonl").exists()
    assert db.exists() and not list(db.parent.glob("outbox.db.corrupt-*")), "the file left as it was"
