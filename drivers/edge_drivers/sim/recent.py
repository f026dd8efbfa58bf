"""Bounded records of what a simulated device was sent.

Tests assert on the commands or bytes a driver sent (``sim.commands == [...]``,
``port.bytes_written == ...``), so the simulators record them; but the daemon runs on
simulated sensors for days (the default configuration), and keeping every command would
grow its memory without end (10 sensors at 10 Hz: ~10 KB a second).  These behave as a
list and a bytearray holding at least the last ``keep`` items: older ones are dropped in
chunks, so appending stays O(1) amortised.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import SupportsIndex, TypeVar

T = TypeVar("T")

KEEP_ITEMS = 1000
KEEP_BYTES = 64 * 1024


class RecentList(list[T]):
    """A list of the last ``keep`` (to ``2 * keep``) items appended."""

    def __init__(self, keep: int = KEEP_ITEMS) -> None:
        super().__init__()
        self.keep = keep

    def append(self, item: T, /) -> None:
        super().append(item)
        if len(self) > 2 * self.keep:
            del self[: len(self) - self.keep]


class RecentBytes(bytearray):
    """A bytearray of the last ``keep`` (to ``2 * keep``) bytes extended with."""

    def __init__(self, keep: int = KEEP_BYTES) -> None:
        super().__init__()
        self.keep = keep

    def extend(self, data: Iterable[SupportsIndex], /) -> None:
        super().extend(data)
        if len(self) > 2 * self.keep:
            del self[: len(self) - self.keep]
