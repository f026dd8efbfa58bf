"""Keyset pagination cursors: where the last page ended, as an opaque string.

A page is ordered by ``(ts, event_id)`` (unique per row of one series), so the next page
is "after this pair" — an index range scan, never ``OFFSET`` (which reads and throws away
every earlier row).  The cursor names the listing it belongs to, so one taken from
``/alarms`` or from an ascending page is refused by a descending ``/readings`` instead of
silently skipping rows.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime

from edge_cloud.ingest.errors import IngestError

MAX_CURSOR_CHARS = 512


class CursorInvalid(IngestError):
    """A ``cursor`` parameter that this listing did not hand out (answered 400)."""


def encode(listing: str, ts: datetime, event_id: str) -> str:
    """The cursor of the page after the row ``(ts, event_id)`` of ``listing``."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)  # SQLite gives naive UTC times back
    raw = json.dumps([listing, ts.astimezone(UTC).isoformat(), event_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(listing: str, cursor: str) -> tuple[datetime, str]:
    """``(ts, event_id)`` of a cursor :func:`encode` made for ``listing``, or :class:`CursorInvalid`."""
    if len(cursor) > MAX_CURSOR_CHARS:
        raise CursorInvalid("cursor is too long: pass the next_cursor of the previous page as it was")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        name, ts_text, event_id = json.loads(raw)
        ts = datetime.fromisoformat(ts_text)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise CursorInvalid("cursor is not one this API handed out: pass next_cursor as it was") from exc
    if name != listing or not isinstance(event_id, str) or ts.tzinfo is None:
        raise CursorInvalid(f"cursor belongs to another listing or order (this one is {listing})")
    return ts, event_id
