"""The retained ``devices/{id}/status`` messages: birth on connect, will (and clean) offline."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Literal

from edge_protocol.wire import rfc3339_ms


def status_payload(
    state: Literal["online", "offline"],
    *,
    boot: str,
    epoch: str,
    ts: datetime | None = None,
    pending: int | None = None,
) -> bytes:
    """``{"state": …, "ts": …, "boot": …, "epoch": …, "pending": …}``; the will has no
    ``ts`` and no ``pending`` (the broker sends it at a time we cannot know, with what was
    true at connect)."""
    body: dict[str, str | int] = {"state": state}
    if ts is not None:
        body["ts"] = rfc3339_ms(ts)
    body["boot"] = boot
    body["epoch"] = epoch
    if pending is not None:
        body["pending"] = pending
    return json.dumps(body, separators=(",", ":")).encode()


def now() -> datetime:
    return datetime.now(UTC)
