"""Counters of the uplink, read by the daemon's status and metrics.

Plain numbers updated on the event loop; :meth:`UplinkStats.snapshot` gives a copy that
can be handed to another task or serialised (``dataclasses.asdict``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

ConnectionState = Literal["stopped", "connecting", "connected", "disconnected", "stopping"]
"""``disconnected``: lost or refused, waiting to retry; ``connecting``: an attempt is running."""


@dataclass
class UplinkStats:
    delivery: str = "broker"
    state: ConnectionState = "stopped"
    connected_since: float | None = None
    """Wall time of the current session's CONNACK."""
    connects: int = 0
    connect_failures: int = 0
    connections_lost: int = 0
    published_batches: int = 0
    published_events: int = 0
    published_bytes: int = 0
    """Payload bytes handed to the broker (after compression), resends included."""
    acked_batches: int = 0
    acked_events: int = 0
    """Events confirmed (PUBACK in ``broker`` mode, the ingest's ack in ``end-to-end``) and deleted."""
    resent_batches: int = 0
    resent_events: int = 0
    rejected_batches: int = 0
    """PUBACKs with a failure reason code."""
    malformed_acks: int = 0
    foreign_epoch_acks: int = 0
    """Acks naming another outbox epoch (an older database): ignored."""
    inflight_batches: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    last_publish_at: float | None = None
    """Wall time events last left the outbox confirmed."""

    def note_error(self, exc: BaseException, at: float) -> None:
        """``exc`` becomes ``last_error``, at wall time ``at``."""
        self.last_error = str(exc)
        self.last_error_at = at

    def snapshot(self) -> UplinkStats:
        return dataclasses.replace(self)
