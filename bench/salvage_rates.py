"""How much ``edge-agent buffer salvage`` gets back from a damaged outbox, by damage and page size.

    .venv/bin/python bench/salvage_rates.py

A 1,003-event outbox (tests/outbox/damage.py), closed cleanly, then damaged: the first
512 B, 4 KiB or 64 KiB zeroed (a lost first sector, lost first pages), or one page in
twenty overwritten with random bytes (seed 1); at the 4 KiB and 1 KiB page sizes.  Run it
from another checkout to get that code's figures (the baseline).  docs/DURABILITY.md
quotes the output; tests/outbox/test_salvage_pages.py asserts the floors.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.outbox.damage import DAMAGES, N_EVENTS, recovery


def main() -> None:
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        for page_size in (4096, 1024):
            for kind in DAMAGES:
                rate, report = recovery(Path(tmp) / f"{page_size}-{kind}".replace(" ", "_"), kind, page_size)
                print(
                    f"page {page_size:5d} B  {kind:13s}  {report.recovered:5d} of {N_EVENTS} = {rate:6.1%}"
                    + (f"  ({report.error})" if report.error else "")
                )


if __name__ == "__main__":
    main()
