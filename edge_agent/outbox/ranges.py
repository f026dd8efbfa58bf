"""Seq ranges, as the ``gap`` events and the eviction log carry them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

Range = tuple[int, int]

GAP_MAX_RANGES = 500
"""Ranges per ``gap`` event: keeps one under ~12 KB, well inside an MQTT batch."""


def merge(ranges: Iterable[Range]) -> list[Range]:
    """Union of ranges, adjacent ones joined: ``[(5, 6), (1, 3), (4, 4)]`` → ``[(1, 6)]``."""
    out: list[Range] = []
    for first, last in sorted(ranges):
        if out and first <= out[-1][1] + 1:
            if last > out[-1][1]:
                out[-1] = (out[-1][0], last)
        else:
            out.append((first, last))
    return out


def count(ranges: Iterable[Range]) -> int:
    return sum(last - first + 1 for first, last in ranges)


def chunks(ranges: Sequence[Range], size: int = GAP_MAX_RANGES) -> Iterator[list[Range]]:
    for i in range(0, len(ranges), size):
        yield list(ranges[i : i + size])
