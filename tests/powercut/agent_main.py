"""``edge-agent run`` with two test-only hooks for the power-cut campaign, set by environment.

* ``POWERCUT_COMMIT_LOG=FILE`` — after every append that committed, one line per event,
  ``<epoch> <seq> <id>``, appended to FILE (outside the power-cut mount, unbuffered: a
  SIGKILL loses nothing already written).  That is what the daemon *reported committed*:
  the line is written after ``Outbox.append_encoded`` returned, i.e. after the commit and
  its fsync, before the producers or the uplink hear of it.
* ``POWERCUT_PRAGMAS='{"wal_autocheckpoint": 16}'`` — extra pragmas for ``Outbox.open``
  (the test injection the outbox offers), to make the daemon's own connection checkpoint
  often enough for cuts to land inside checkpoints.
* ``POWERCUT_SYNCHRONOUS=NORMAL`` — open the outbox with its benchmark-only
  ``synchronous="NORMAL"``: the control run showing what the campaign catches.

Nothing else changes: this runs the real CLI entry point.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from edge_agent.events import StoredEvent
from edge_agent.outbox.codec import EncodedEvent
from edge_agent.outbox.store import Outbox


def install_hooks() -> None:
    log_path = os.environ.get("POWERCUT_COMMIT_LOG")
    if log_path:
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        append_encoded = Outbox.append_encoded

        async def logged(
            self: Outbox, encoded: Sequence[EncodedEvent], *, also: Sequence[tuple[str, tuple[Any, ...]]] = ()
        ) -> list[StoredEvent]:
            stored = await append_encoded(self, encoded, also=also)
            if stored:
                lines = "".join(f"{self.epoch} {e.seq} {e.envelope['id']}\n" for e in stored)
                os.write(fd, lines.encode())
            return stored

        Outbox.append_encoded = logged  # type: ignore[method-assign]

    pragmas = json.loads(os.environ.get("POWERCUT_PRAGMAS") or "{}")
    synchronous = os.environ.get("POWERCUT_SYNCHRONOUS")
    if pragmas or synchronous:
        open_outbox = Outbox.open.__func__  # type: ignore[attr-defined]

        async def opened(cls: type[Outbox], path: Any, **kwargs: Any) -> Outbox:
            kwargs["pragmas"] = {**(kwargs.get("pragmas") or {}), **pragmas}
            if synchronous:
                kwargs["synchronous"] = synchronous
            outbox: Outbox = await open_outbox(cls, path, **kwargs)
            return outbox

        Outbox.open = classmethod(opened)  # type: ignore[method-assign,assignment]


if __name__ == "__main__":
    install_hooks()
    from edge_agent.cli.app import main

    main()
