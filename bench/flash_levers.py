"""Experiment: each lever of issue 15 in isolation, measured with bench/flash_wear.py's method.

NOT the shipped behaviour: every lever but the offline ones is applied by patching the
daemon in its own process (a preamble run before ``edge_agent``'s CLI), to learn what it
would save before anyone builds it properly.  The shipped code is the first row.

Levers (``--levers``, comma-separated; ``+`` combines):

* ``page1k`` / ``page2k``: the outbox file rebuilt with 1 KiB / 2 KiB pages (``VACUUM``,
  after a first start has made the file; the daemon then runs on it);
* ``nolaneidx``: the ``events_by_lane`` index dropped (the only index an insert or a
  delete touches: ``events_unsynced`` is partial, on ``unsynced = 1`` rows only);
* ``ckpt100`` / ``ckpt10k``: ``wal_autocheckpoint`` 100 / 10,000 pages (shipped: 1,024);
* ``fold``: an acknowledged delete is not committed on its own but carried by the next
  append's transaction (``append_encoded(also=…)``).  The in-memory tally is not updated
  for those deletes: fine for a short run, wrong for a device;
* ``window``: the outbox writer waits 1 s before each commit (a commit window:
  ``storage.commit_interval = 1s`` as the issue proposes), so one transaction carries
  every event of that second.

    sudo .venv/bin/python bench/flash_levers.py [--seconds 20] [--levers shipped,fold,...]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from flash_wear import DAY, Device, agent, loop_ext4, measure, plain_dir, settle, wait_for, write_config

from tests.mosquitto import Mosquitto

# Run in the daemon's process before the CLI: applies the levers named in FLASH_LEVERS.
PREAMBLE = r"""
import asyncio, os, sys
levers = set(os.environ.get("FLASH_LEVERS", "").split("+"))
if "ckpt100" in levers or "ckpt10k" in levers:
    import edge_agent.outbox.opening as opening
    pages = 100 if "ckpt100" in levers else 10_000
    opening.autocheckpoint_pages = lambda reserve_bytes: pages
if "window" in levers:
    from edge_agent.outbox.writer import OutboxWriter
    commit = OutboxWriter._commit_one_batch
    async def _windowed(self):
        if not self._stopping:
            await asyncio.sleep(1.0)
        await commit(self)
    OutboxWriter._commit_one_batch = _windowed
if "fold" in levers:
    from edge_agent.outbox import codec
    from edge_agent.outbox.store import Outbox
    append, pending = Outbox.append_encoded, []
    async def _delete(self, seqs):
        pending.extend(seqs)
        self._caps.claimed.difference_update(seqs)
        return len(seqs)
    async def _append(self, encoded, *, also=()):
        if pending:
            also = [*also, ("DELETE FROM events WHERE seq IN (SELECT value FROM json_each(?))",
                            (codec.dumps(sorted(pending)),))]
            pending.clear()
        return await append(self, encoded, also=also)
    Outbox.delete, Outbox.append_encoded = _delete, _append
sys.argv = ["edge-agent", *sys.argv[1:]]
from edge_agent.cli.app import main
main()
"""

OFFLINE = {"page1k": 1024, "page2k": 2048}


def rebuild(db: Path, levers: set[str]) -> None:
    """Apply the offline levers to an outbox file the daemon made and closed."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        if "nolaneidx" in levers:
            conn.execute("DROP INDEX events_by_lane")
        for name, size in OFFLINE.items():
            if name in levers:
                conn.execute("PRAGMA journal_mode = DELETE")
                conn.execute(f"PRAGMA page_size = {size}")
                conn.execute("VACUUM")
                conn.execute("PRAGMA journal_mode = WAL")
    finally:
        conn.close()


def run(
    fs: Path, device: Device, port: int, levers: str, count: int, interval: float, args: argparse.Namespace
) -> str:
    directory = fs / f"{levers}-{count}"
    directory.mkdir()
    cfg = write_config(directory, port, count, interval)
    state = directory / "state"
    chosen = set(levers.split("+"))
    if chosen & ({"nolaneidx"} | set(OFFLINE)):
        with agent(cfg):
            wait_for(state)
            time.sleep(3)
        rebuild(state / "outbox.db", chosen)
    os.environ["FLASH_LEVERS"] = levers
    with agent(cfg, [sys.executable, "-c", PREAMBLE]) as proc:
        wait_for(state)
        settled = settle(state, args.warmup)
        p = measure(levers, proc.pid, state, device, args.seconds)
    page = sqlite3.connect(state / "outbox.db").execute("PRAGMA page_size").fetchone()[0]
    wb, dev = p.delta("write_bytes"), p.device_bytes
    n = max(1, p.appended)
    return (
        f"{levers:22} {count:>2} x {1 / interval:>2.0f} Hz {p.appended / p.seconds:6.1f} {wb / n:9,.0f}"
        f" {dev / n if device.name else 0:9,.0f} {dev / p.seconds * DAY / 1e6 if device.name else 0:9,.0f} {page:6}"
        + ("" if settled else "  (WAL still growing)")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=6.0)
    parser.add_argument(
        "--levers", default="shipped,page1k,nolaneidx,ckpt100,ckpt10k,fold,window,window+fold"
    )
    parser.add_argument("--fs", choices=["loop", "dir"], default="loop" if os.geteuid() == 0 else "dir")
    args = parser.parse_args()
    print(
        f"{'lever':22} {'shape':>11} {'ev/s':>6} {'wb/event':>9} {'dev/event':>9} {'MB/day dev':>9} {'page':>6}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.fs == "dir":
            (root / "fs").mkdir()
        where = loop_ext4(root) if args.fs == "loop" else plain_dir(root / "fs")
        with where as (fs, device), Mosquitto(root / "broker") as broker:
            for levers in args.levers.split(","):
                for count, interval in ((5, 1.0), (10, 0.1)):
                    print(run(fs, device, broker.port, levers, count, interval, args), flush=True)


if __name__ == "__main__":
    main()
