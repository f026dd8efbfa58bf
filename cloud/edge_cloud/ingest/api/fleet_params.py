"""Query parameters the fleet routes share: patterns, page sizes, the ``since``/``until`` window."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime, BeforeValidator

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
_RFC3339_START = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ]")


def _rfc3339(value: object) -> object:
    """Refuse a number: pydantic reads ``"0"`` or ``"20261125"`` as Unix seconds (1970),
    a window nobody asked for answered 200."""
    if isinstance(value, str) and not _RFC3339_START.match(value):
        raise ValueError("an RFC 3339 time with a zone is required (2026-11-25T13:19:03Z), not a number")
    return value


Time = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]
"""A ``since``/``until``: RFC 3339 with a zone."""


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
