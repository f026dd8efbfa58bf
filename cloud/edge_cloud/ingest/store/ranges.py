"""Inclusive seq ranges: merging what is stored with what arrives (pure functions)."""

from __future__ import annotations

from collections.abc import Iterable

SeqRange = tuple[int, int]


def merge(ranges: Iterable[SeqRange]) -> list[SeqRange]:
    """Overlapping and adjacent ranges joined, sorted: ``[(1, 3), (4, 6), (9, 9)]`` → ``[(1, 6), (9, 9)]``."""
    out: list[SeqRange] = []
    for first, last in sorted(ranges):
        if out and first <= out[-1][1] + 1:
            if last > out[-1][1]:
                out[-1] = (out[-1][0], last)
        else:
            out.append((first, last))
    return out


def covers(ranges: Iterable[SeqRange], new: Iterable[SeqRange]) -> bool:
    """Every seq of ``new`` is already in ``ranges`` (both merged and sorted)."""
    have = list(ranges)
    return all(any(a <= first and last <= b for a, b in have) for first, last in new)
