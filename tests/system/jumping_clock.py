"""``python -m tests.system.jumping_clock OFFSET_FILE edge-agent-args…``: the real
``edge-agent`` CLI with a wall clock the campaign can jump from outside.

A test hook of the campaign's own, not of the daemon: before the agent is imported,
``time.time``/``time.time_ns`` are wrapped to add the seconds in OFFSET_FILE (read again
at most every 0.2 s), so event timestamps, the outbox's wall time and the uplink's wall
clock jump backwards and forwards while ``time.monotonic`` runs on, as after an NTP step
or an RTC-less boot.  ``datetime.now()`` (birth messages) does not follow: it reads the C
clock directly."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

_real_time, _real_time_ns = time.time, time.time_ns
_offset_file = Path(sys.argv[1])
_cache = [0.0, -1.0]  # offset, monotonic time it was read


def _offset() -> float:
    now = time.monotonic()
    if now - _cache[1] > 0.2:
        with contextlib.suppress(OSError, ValueError):
            _cache[0] = float(_offset_file.read_text() or 0)
        _cache[1] = now
    return _cache[0]


def _time() -> float:
    return _real_time() + _offset()


def _time_ns() -> int:
    return _real_time_ns() + int(_offset() * 1e9)


time.time = _time
time.time_ns = _time_ns

if __name__ == "__main__":
    sys.argv = ["edge-agent", *sys.argv[2:]]
    from edge_agent.cli.app import main

    main()
