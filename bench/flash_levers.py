"""Experiment: issue 15's levers one at a time against the shipped defaults, with bench/flash_wear.py's method.

The shipped code (first row) has a 1.5 s commit window (``storage.commit_interval``),
acknowledged deletes carried by the next append (waiting up to two windows for one), 4 KiB
pages, statement journals in memory and a partial index on the priority lane only.  The
other rows change one thing:

* ``window0`` / ``window250ms`` / ``window500ms``: ``storage.commit_interval`` = 0 (every
  event committed at once, no delete carried: the behaviour before issue 15 but for the
  page size), 0.25 s, 0.5 s — set in the configuration, nothing patched;
* ``page1k``: 1 KiB pages (what the release of issue 15 shipped): patched in the daemon's
  process (a preamble run before ``edge_agent``'s CLI), so that new files get it and the
  open does not rebuild them;
* ``laneidx``: the ``(lane, seq)`` index of schema 3 back (``events_by_lane``, which every
  insert and delete touched), between a first start and the measured one — what schema 4
  replaced by the partial ``events_priority``;
* ``ckpt100`` / ``ckpt10k``: ``wal_autocheckpoint`` 100 / 10,000 pages (shipped: half the
  disk-full reserve, 1,024 pages of 4 KiB), patched.

Each shape is measured for ``--seconds`` once the WAL stops growing (at most 2 minutes),
not over whole checkpoint cycles as ``bench/flash_wear.py`` does: read the rows against
each other, not as steady-state figures.

    sudo .venv/bin/python bench/flash_levers.py [--seconds 20] [--levers shipped,window0,...]
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
import os, sys
levers = set(os.environ.get("FLASH_LEVERS", "").split("+"))
if "ckpt100" in levers or "ckpt10k" in levers:
    import edge_agent.outbox.opening as opening
    pages = 100 if "ckpt100" in levers else 10_000
    opening.autocheckpoint_pages = lambda reserve_bytes, page_size=0: pages
if "page1k" in levers:
    import edge_agent.outbox.page_size as page_size
    import edge_agent.outbox.recovery as recovery
    page_size.PAGE_SIZE = recovery.PAGE_SIZE = 1024
sys.argv = ["edge-agent", *sys.argv[1:]]
from edge_agent.cli.app import main
main()
"""

WINDOWS = {"window0": "0", "window250ms": "250ms", "window500ms": "500ms"}


def rebuild(db: Path, levers: set[str]) -> None:
    """Apply the offline levers to an outbox file the daemon made and closed."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        if "laneidx" in levers:
            conn.execute("CREATE INDEX events_by_lane ON events (lane, seq)")
    finally:
        conn.close()


def run(
    fs: Path, device: Device, port: int, levers: str, count: int, interval: float, args: argparse.Namespace
) -> str:
    directory = fs / f"{levers}-{count}"
    directory.mkdir()
    cfg = write_config(directory, port, count, interval)
    chosen = set(levers.split("+"))
    for name, window in WINDOWS.items():
        if name in chosen:
            cfg.write_text(
                cfg.read_text().replace("[storage]\n", f'[storage]\ncommit_interval = "{window}"\n', 1)
            )
    state = directory / "state"
    os.environ["FLASH_LEVERS"] = levers
    if "laneidx" in chosen:
        with agent(cfg, [sys.executable, "-c", PREAMBLE]):
            wait_for(state)
            time.sleep(3)
        rebuild(state / "outbox.db", chosen)
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
        "--levers", default="shipped,window0,window250ms,window500ms,page1k,laneidx,ckpt100,ckpt10k"
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
