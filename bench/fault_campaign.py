"""The fault campaign for minutes, printing its counts (CI runs 20 s of it:
tests/system/test_fault_campaign.py).

    .venv/bin/python bench/fault_campaign.py [--minutes 5] [--seed 19] [--agents 3]

Real ``edge-agent run`` processes (their wall clocks jumped through
``tests/system/jumping_clock.py``), Mosquitto and ``edge-ingest serve``; SIGKILL or
SIGSTOP of each at random moments; the agents' uplink through the campaign's TCP proxy
(drops, stalls, half-open connections).  Exit status 1 if anything is lost, stored twice,
out of the priority lane's order or left pending.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.system.campaign import run_campaign


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--agents", type=int, default=3)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="fault-campaign-") as tmp:
        started = time.monotonic()
        counts = run_campaign(
            Path(tmp),
            duration=args.minutes * 60,
            seed=args.seed,
            agents=args.agents,
            say=lambda line: print(time.strftime("%H:%M:%S"), line, flush=True),
        )
        print(f"{counts.line()} ({time.monotonic() - started:.0f} s in all)", flush=True)
    bad = counts.lost or counts.stored_twice or counts.order_violations or counts.pending
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
