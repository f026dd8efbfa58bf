"""Keyset cursors on keys other than ``(ts, event_id)`` (``cursors.py``'s): a device id,
``(epoch, first_seq)``, a quarantine row id.  Same rules: opaque, named after the listing
they belong to, refused (400, :class:`~edge_cloud.ingest.api.cursors.CursorInvalid`) when
this listing did not hand them out."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime

from edge_cloud.ingest.api import cursors
from edge_cloud.ingest.api.cursors import MAX_CURSOR_CHARS, CursorInvalid

Key = str | int


def encode_key(listing: str, *key: Key) -> str:
    """The cursor of the page after the row whose key is ``key``."""
    raw = json.dumps([listing, *key], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_key(listing: str, cursor: str, shape: tuple[type[str] | type[int], ...]) -> tuple[Key, ...]:
    """The key :func:`encode_key` put in ``cursor`` for ``listing``, its parts of the types
    ``shape`` names; :class:`CursorInvalid` otherwise."""
    if len(cursor) > MAX_CURSOR_CHARS:
        raise CursorInvalid("cursor is too long: pass the next_cursor of the previous page as it was")
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise CursorInvalid("cursor is not one this API handed out: pass next_cursor as it was") from exc
    if not isinstance(value, list) or len(value) != len(shape) + 1 or value[0] != listing:
        raise CursorInvalid(f"cursor belongs to another listing (this one is {listing})")
    key = tuple(value[1:])
    # bool is an int to isinstance: refuse it explicitly, as JSON true is no key of ours.
    if not all(type(part) is kind and _storable(part) for part, kind in zip(key, shape, strict=True)):
        raise CursorInvalid("cursor is not one this API handed out: pass next_cursor as it was")
    return key


def _storable(part: Key) -> bool:
    """A value the databases can compare with: a BIGINT, text without NUL (a hand-made
    cursor must get a 400, not the driver's overflow or PostgreSQL's NUL refusal)."""
    if isinstance(part, int):
        return -(2**63) <= part < 2**63
    return "\x00" not in part


def decode_event_key(listing: str, cursor: str | None) -> tuple[datetime, str] | None:
    """``cursors.decode`` with the time in UTC (stored times are UTC; a hand-made cursor
    whose time has no UTC equivalent is refused), None without a cursor."""
    if cursor is None:
        return None
    ts, event_id = cursors.decode(listing, cursor)
    try:
        return ts.astimezone(UTC), event_id
    except OverflowError:
        raise CursorInvalid("cursor is not one this API handed out: pass next_cursor as it was") from None
