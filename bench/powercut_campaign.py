"""The power-cut campaign, longer than CI runs it, printing its counts.

    .venv/bin/python bench/powercut_campaign.py [--rounds 500] [--seed 7] [--control-rounds 30]

Needs FUSE 3 (``apt install fuse3``; /dev/fuse), ``mfusepy`` (dev extra) and
Mosquitto.  Runs the campaign of ``tests/powercut/campaign.py`` (real daemon, power-cut
file system, cuts while running, checkpointing, evicting) with the outbox as shipped
(``synchronous=FULL``), then, as the baseline of the same run, a control campaign with
appends at ``synchronous=NORMAL``, which must show reissued seqs: the proof that the
campaign would see the loss the setting prevents.  Exit status 1 if the shipped setting
shows any reissued seq or lost event, or the control shows none.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.powercut.campaign import Settings, run_campaign


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--control-rounds", type=int, default=30, help="rounds with synchronous=NORMAL (0: none)"
    )
    parser.add_argument("--verbose", action="store_true", help="print every round")
    args = parser.parse_args()
    # Stopped with SIGTERM/SIGINT (also when started in the background): clean up the
    # daemon, the mount and the broker on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def progress(line: str) -> None:
        if args.verbose:
            print(time.strftime("%H:%M:%S"), line, flush=True)

    with tempfile.TemporaryDirectory(prefix="powercut-") as tmp:
        print(f"== outbox as shipped (synchronous=FULL), seed {args.seed}", flush=True)
        shipped = run_campaign(Path(tmp) / "full", Settings(rounds=args.rounds, seed=args.seed), progress)
        print(shipped.summary(), flush=True)
        ok = not shipped.failures and not shipped.undelivered
        if args.control_rounds:
            print(f"\n== control: appends with synchronous=NORMAL, seed {args.seed}", flush=True)
            control = run_campaign(
                Path(tmp) / "normal",
                Settings(rounds=args.control_rounds, seed=args.seed, synchronous="NORMAL"),
                progress,
            )
            print(control.summary(), flush=True)
            ok = ok and bool(control.failures)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
