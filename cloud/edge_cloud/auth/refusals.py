"""Refusals in the audit log (failed logins and enrollments, 403s, 429s), at a bounded rate.

A change is recorded in the transaction that makes it (``audit.record``).  A refusal
changes nothing and is caused by whoever sends the request, anonymous callers included,
as often as they like: one audit row per refused request would let a flood grow the
table at the attacker's rate.  So refusals are written in a transaction of their own, in
fixed windows of ``WINDOW`` seconds, at most ``PER_KEY`` rows for one (action, client
address) and at most ``TOTAL`` rows in all.  What is left out is counted; the first
refusal of a later window first writes one ``audit.suppressed`` row with those counts.
Worst case: ``TOTAL + 1`` rows a minute, whatever the flood (about 174,000 rows a day).

The counters live in the process, like the rate limits (one ``serve`` per database).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from edge_cloud.auth import audit

log = logging.getLogger(__name__)

WINDOW = 60.0
PER_KEY = 20  # = the default failures per address in a 15-minute window: those are all kept
TOTAL = 120
SUPPRESSED = "audit.suppressed"
ANONYMOUS = "anonymous"

# The audit columns' sizes (tables.audit_log): a refusal's actor is often what the caller
# sent (a user name), and must not turn the record into a database error.
_ACTOR, _TARGET, _ADDRESS = 128, 128, 64


def _clean(value: str | None, size: int) -> str | None:
    """Cut to the column, and no NUL (PostgreSQL refuses it in text)."""
    return None if value is None else value.replace("\x00", "\ufffd")[:size]


class RefusalLog:
    def __init__(
        self,
        engine: Engine,
        clock: Callable[[], float],
        *,
        window: float = WINDOW,
        per_key: int = PER_KEY,
        total: int = TOTAL,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.window = window
        self.per_key = per_key
        self.total = total
        self._lock = threading.Lock()
        self._window_start = float("-inf")
        self._written: Counter[tuple[str, str]] = Counter()
        self._suppressed: Counter[str] = Counter()

    def record(
        self,
        action: str,
        *,
        actor: str | None,
        address: str | None,
        reason: str,
        target: str | None = None,
        **detail: Any,
    ) -> bool:
        """Write one refusal unless its key or the whole window is over the limit.  True if written."""
        now = self.clock()
        key = (action, address or "")
        with self._lock:
            summary = self._roll(now)
            admitted = self._written[key] < self.per_key and self._written.total() < self.total
            if admitted:
                self._written[key] += 1
            else:
                if not self._suppressed:
                    log.warning("refusals over the audit limit: counting instead of recording (%s)", action)
                self._suppressed[action] += 1
        rows: list[dict[str, Any]] = []
        if summary is not None:
            since, counts = summary
            rows.append(
                {"actor": "edge-auth", "action": SUPPRESSED, "since": int(since),
                 "count": sum(counts.values()), "actions": dict(sorted(counts.items()))}
            )  # fmt: skip
        if admitted:
            rows.append(
                {"actor": _clean(actor or ANONYMOUS, _ACTOR), "action": action,
                 "target": _clean(target, _TARGET), "address": _clean(address, _ADDRESS),
                 "reason": reason, **detail}
            )  # fmt: skip
        if not rows:
            return False
        try:
            with self.engine.begin() as conn:
                for row in rows:
                    audit.record(conn, at=now, **row)
        except sa.exc.SQLAlchemyError as exc:  # the refusal stands: the client gets it, not a 500
            log.error("cannot record the refusal %s from %s in the audit log: %s", action, address, exc)
            return False
        return admitted

    def _roll(self, now: float) -> tuple[float, Counter[str]] | None:
        """Start a new window if this one is over; the last one's suppressed counts, if any."""
        if now < self._window_start + self.window:
            return None
        previous, suppressed = self._window_start, self._suppressed
        self._window_start = now
        self._written = Counter()
        self._suppressed = Counter()
        return (previous, suppressed) if suppressed else None
