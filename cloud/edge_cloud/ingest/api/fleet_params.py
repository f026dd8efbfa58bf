"""Query parameters the fleet routes share: patterns, page sizes, the ``since``/``until`` window."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi.exceptions import RequestValidationError

from edge_cloud.ingest.api.deps import PROBLEM
from edge_protocol.wire import DEVICE_ID_PATTERN

DEVICE_ID = DEVICE_ID_PATTERN.pattern
SENSOR = r"^[a-z0-9][a-z0-9_-]{0,63}$"
"""A configured sensor name (PROTOCOL.md), as stored."""
NAME = r"^[^\x00-\x1f\x7f]{1,64}$"
"""A test name, an alarm code, an epoch: printable text that fits its column."""
# Declared per route: app.py's loop that adds 400 to routes with a cursor does not reach
# routes of included routers with this FastAPI (0.165: they are ``_IncludedRouter``s).
CURSOR: dict[int | str, dict[str, Any]] = {400: PROBLEM}
"""A listing with a cursor answers 400 to one it did not hand out."""
CURSOR_404: dict[int | str, dict[str, Any]] = {400: PROBLEM, 404: PROBLEM}
"""... and 404 for a device never seen."""
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def utc(value: datetime | None, name: str) -> datetime | None:
    """``value`` in UTC (stored times are UTC; SQLite compares them as text), or a 422 when
    it has no UTC equivalent (``9999-12-31T23:00:00-05:00``)."""
    if value is None:
        return None
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise invalid(name, "out of range in UTC", value) from None


def window(since: datetime | None, until: datetime | None) -> tuple[datetime | None, datetime | None]:
    """``since``/``until`` in UTC; 422 unless ``since`` is before ``until``."""
    since, until = utc(since, "since"), utc(until, "until")
    if since is not None and until is not None and since >= until:
        raise invalid("until", "must be after since", until)
    return since, until


def invalid(name: str, message: str, value: object) -> RequestValidationError:
    """A 422 shaped like FastAPI's own (the spec's ``HTTPValidationError``)."""
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", name), "msg": f"{name}: {message}", "input": str(value)}]
    )
