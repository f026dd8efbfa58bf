"""The outbox runtime clock: seconds the outbox has been open, summed over restarts.

The age cap is measured on this clock, not on the wall clock, so that a Pi booting with
its clock in 1970 (or NTP stepping it a year ahead) cannot purge a backlog.  It is built
from ``time.monotonic()`` (injected), and its value is persisted with every transaction;
at open it resumes from the last persisted value.  Time while the device is off, and
between the last transaction and a crash, does not count: events can only be kept
*longer* than ``max_age``, never evicted early.
"""

from __future__ import annotations

from collections.abc import Callable


class RuntimeClock:
    def __init__(self, base: float, monotonic: Callable[[], float]) -> None:
        self._base = base
        self._monotonic = monotonic
        self._start = monotonic()
        self._last = base

    def now(self) -> float:
        # max(): never run backwards, even if an injected clock does.
        self._last = max(self._last, self._base + (self._monotonic() - self._start))
        return self._last
