"""What the fleet queries share: UTC times, and the keyset condition on ``(ts, event_id)``."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa


def aware(ts: datetime) -> datetime:
    """A stored time as an aware UTC datetime (SQLite gives naive ones back: they are UTC)."""
    if ts.tzinfo is None:
        return ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC)


def after(
    ts_col: sa.ColumnElement[datetime],
    id_col: sa.ColumnElement[str],
    ts: datetime,
    event_id: str,
    *,
    descending: bool,
) -> sa.ColumnElement[bool]:
    """Rows strictly after ``(ts, event_id)`` in the listing's order (the next page).

    Written as an OR rather than a row-value comparison so that SQLAlchemy binds ``ts``
    with the column's type (SQLite stores text: the bound value must be the same text)."""
    if descending:
        return sa.or_(ts_col < ts, sa.and_(ts_col == ts, id_col < event_id))
    return sa.or_(ts_col > ts, sa.and_(ts_col == ts, id_col > event_id))


def since_until(
    ts_col: sa.ColumnElement[datetime], since: datetime | None, until: datetime | None
) -> list[sa.ColumnElement[bool]]:
    """``since <= ts < until``; the bounds are aware UTC datetimes (the caller converted them)."""
    out: list[sa.ColumnElement[bool]] = []
    if since is not None:
        out.append(ts_col >= since)
    if until is not None:
        out.append(ts_col < until)
    return out
