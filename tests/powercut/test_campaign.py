"""The power-cut campaign in CI: 100 cuts of the real daemon, zero reissued seqs, zero lost events.

The 100 cuts run as two halves of 50 with seeds of their own, so that pytest-xdist runs
them side by side (the campaign is the suite's longest test).  ``POWERCUT_ROUNDS`` (the
total) / ``POWERCUT_SEED`` (the first half's) change the run (``bench/powercut_campaign.py``
runs longer ones and prints the same counts).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.mosquitto import Mosquitto
from tests.powercut.campaign import KINDS, Campaign, Settings
from tests.powercut.mount import require_fuse

HALVES = 2


@pytest.mark.slow
@pytest.mark.parametrize("half", range(HALVES))
def test_power_cuts_never_reissue_a_seq_nor_lose_an_event(tmp_path: Path, half: int) -> None:
    require_fuse()
    settings = Settings(
        rounds=int(os.environ.get("POWERCUT_ROUNDS", "100")) // HALVES,
        seed=int(os.environ.get("POWERCUT_SEED", "7")) + half,
    )
    lines: list[str] = []
    with Mosquitto(tmp_path / "broker") as broker:
        counts = Campaign(tmp_path, broker, settings, progress=lines.append).run()
    report = counts.summary()
    print(report)  # shown with -s, and in the failure below
    assert not counts.failures, report
    assert counts.undelivered == 0, report
    assert not counts.stop_hangs, report
    # A quarantine after a power cut would mean SQLite's WAL recovery failed: none expected.
    assert not counts.quarantines, report
    # The campaign exercised what it claims.
    assert counts.rounds == settings.rounds
    assert counts.checkpoint_writes >= settings.rounds // 10, report
    assert counts.mid_wal >= settings.rounds // 5, report
    assert counts.eviction_rounds >= settings.rounds // 10, report
    assert counts.modes["prefix"] >= settings.rounds // 5, report
    # (About 20 a round on a quiet machine, 18 with the cores shared: the count, not a pace.)
    assert counts.committed > 10 * settings.rounds, report


def test_the_campaign_catches_an_outbox_that_does_not_fsync_its_commits(tmp_path: Path) -> None:
    """Control run: appends with synchronous=NORMAL (the WAL is fsynced only at checkpoints).

    Published events are then lost with the power and their seqs given again to other
    events: the campaign must see it, or its zeros above would prove nothing.
    """
    require_fuse()
    # Its verdict is counted round by round; the final drain would only wait out its timeout
    # for the events this setting lost (90 s of the suite's time), so it is kept short.
    settings = Settings(
        rounds=12,
        seed=11,
        synchronous="NORMAL",
        weights=tuple(float(k == "timed") for k in KINDS),  # timed cuts only
        eviction_share=0,
        drain_timeout=5.0,
    )
    with Mosquitto(tmp_path / "broker") as broker:
        counts = Campaign(tmp_path, broker, settings).run()
    assert counts.reissued or counts.lost or counts.behind, counts.summary()
