"""kill -9 while appending: every event reported committed is there after a restart, and
no seq is ever given twice."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

from edge_agent.events import Lane

from .helpers import check_wire, open_outbox

REPO = Path(__file__).resolve().parents[2]


def _run_and_kill(path: Path, after_lines: int) -> tuple[str, int, dict[int, str]]:
    """Start the child, let it report ``after_lines`` commits, SIGKILL it mid-stream."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.outbox.crash_child", str(path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    _, epoch, first_seq = child.stdout.readline().split()
    reported: dict[int, str] = {}
    try:
        for line in child.stdout:
            if not line.endswith("\n"):
                break  # cut by the kill
            seq, event_id = line.split()
            reported[int(seq)] = event_id
            if len(reported) >= after_lines:
                os.kill(child.pid, signal.SIGKILL)
                break
    finally:
        child.kill()
        child.wait(timeout=30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    return epoch, int(first_seq), reported


def test_sigkill_loses_no_committed_event_and_reuses_no_seq(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    rng = random.Random(7)
    all_reported: dict[int, str] = {}
    epochs = set()
    highest = 0
    for _ in range(4):
        epoch, first_seq, reported = _run_and_kill(path, rng.randint(500, 4000))
        epochs.add(epoch)
        assert first_seq > highest  # a restart continues after everything committed before
        assert reported and min(reported) > highest, "a seq was reused after a kill"
        assert not set(reported) & set(all_reported)
        all_reported |= reported
        highest = max(all_reported)
    assert len(epochs) == 1  # same file, same epoch, across four kills

    async def check() -> None:
        outbox = await open_outbox(path)
        assert outbox.quarantined is None and outbox.epoch in epochs
        present = {}
        lanes: tuple[Lane, ...] = ("priority", "readings")
        for lane in lanes:
            for event in await outbox.fetch(lane, limit=1_000_000):
                present[event.seq] = event
        missing = [s for s in all_reported if s not in present]
        assert not missing, f"{len(missing)} committed events lost, e.g. {missing[:5]}"
        assert all(present[s].envelope["id"] == i for s, i in all_reported.items())
        for seq in list(all_reported)[::250]:
            check_wire(present[seq])
        assert outbox.next_seq > highest
        await outbox.close()

    asyncio.run(check())
