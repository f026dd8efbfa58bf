"""Is the wall clock trustworthy yet?  A Pi without an RTC boots with a wrong clock.

The kernel knows: ``adjtimex(2)`` returns ``TIME_ERROR`` while the clock is not
synchronised (``STA_UNSYNC`` set; systemd-timesyncd and chrony clear it once they
have disciplined the clock).  Events made before that are marked ``unsynced`` and
keep their monotonic time, so their ``ts`` can be corrected once the clock syncs.
A device whose clock is trusted for another reason (an RTC, GPS time) sets
``device.clock_check = "none"``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import time
from collections.abc import Callable
from typing import Literal

from edge_protocol.wire import ClockState

log = logging.getLogger(__name__)

TIME_ERROR = 5
_TIMEX_SIZE = 512  # larger than struct timex on every ABI; only ``modes`` (0 = read-only) matters

ClockCheck = Literal["kernel", "none"]


def kernel_clock_synced() -> bool | None:
    """True/False from ``adjtimex``; None where it cannot be asked (not Linux)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        adjtimex = libc.adjtimex
    except (OSError, AttributeError):
        return None
    buf = ctypes.create_string_buffer(_TIMEX_SIZE)  # zeroed: modes = 0, nothing is changed
    state = int(adjtimex(buf))
    if state < 0:
        return None
    return state != TIME_ERROR


class ClockWatch:
    """Current clock state, and the offset that maps monotonic time to wall time."""

    def __init__(
        self,
        check: ClockCheck = "kernel",
        *,
        probe: Callable[[], bool | None] = kernel_clock_synced,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.check = check
        self._probe = probe
        self._wall = wall
        self._monotonic = monotonic
        self.state: ClockState = "synced" if check == "none" else self._ask()

    def _ask(self) -> ClockState:
        synced = self._probe()
        # Where the kernel cannot be asked we cannot know better than to trust the clock.
        return "unsynced" if synced is False else "synced"

    def poll(self) -> bool:
        """Re-read the state; True exactly when the clock has just become synced."""
        if self.check == "none":
            return False
        before, self.state = self.state, self._ask()
        if before == "unsynced" and self.state == "synced":
            log.info("wall clock is now synchronised; correcting timestamps of unsynced events")
            return True
        return False

    def wall_minus_mono(self) -> float:
        return self._wall() - self._monotonic()
