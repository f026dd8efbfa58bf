"""Human-friendly durations ("500ms", "5s", "7d") and sizes ("256MiB") for the config."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*$")
_DURATION_FACTORS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKMGT]i?B|B)?\s*$")
_SIZE_FACTORS = {
    "B": 1,
    "kB": 1000, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4,
    "KiB": 1024, "kiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4,
}  # fmt: skip


def parse_duration(value: object) -> float:
    """Seconds from a number or a string such as ``"250ms"``, ``"10s"``, ``"5m"``, ``"7d"``."""
    if isinstance(value, bool):
        raise ValueError('expected a duration such as 10, "10s", "5m" or "7d"')
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _DURATION_FACTORS[match.group(2) or "s"]
    raise ValueError(f'{value!r} is not a duration; use seconds or a string like "500ms", "10s", "5m", "7d"')


def parse_size(value: object) -> int:
    """Bytes from an integer or a string such as ``"512MiB"`` or ``"2GB"``."""
    if isinstance(value, bool):
        raise ValueError('expected a size such as 1048576 or "256MiB"')
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match:
            return int(float(match.group(1)) * _SIZE_FACTORS[match.group(2) or "B"])
    raise ValueError(f'{value!r} is not a size; use bytes or a string like "256MiB" or "2GB"')


def parse_int_literal(value: object) -> object:
    """Accept ``"0x76"`` as well as ``0x76`` (TOML has hex integers, env vars are strings)."""
    if isinstance(value, str):
        try:
            return int(value.strip(), 0)
        except ValueError:
            return value
    return value


Duration = Annotated[float, BeforeValidator(parse_duration)]
ByteSize = Annotated[int, BeforeValidator(parse_size)]
