"""Keeping the consumer connected: one :class:`Session` at a time, reconnected with jitter
by :class:`~edge_cloud.ingest.mqtt_link.Link` (one WARNING per series of failed attempts,
INFO when connected).  A broker announcing a Receive Maximum under ours is connected to
again with its figure.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from edge_cloud.ingest.consumer.metrics import IngestMetrics
from edge_cloud.ingest.consumer.session import ACKS_INFLIGHT, Received, ReceiveMaximumLower, Session
from edge_cloud.ingest.mqtt_link import Link
from edge_cloud.ingest.settings import MQTTSettings

log = logging.getLogger(__name__)


class BrokerLink(Link[Session]):
    def __init__(
        self,
        settings: MQTTSettings,
        client_id: str,
        *,
        on_message: Callable[[Received], None],
        metrics: IngestMetrics,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(settings, client_id, thread_name="ingest-mqtt", log=log, monotonic=monotonic)
        self._on_message = on_message
        self._metrics = metrics
        self._clock = clock
        self._max_inflight = ACKS_INFLIGHT
        self.connected_once = threading.Event()

    def stop(self) -> None:
        """Close the current session (the broker keeps it: messages not acknowledged are
        delivered again to this client id) and stop reconnecting."""
        super().stop()

    @property
    def session(self) -> Session | None:
        """The connected session, or None."""
        return self.current

    def _open(self) -> Session:
        session = Session(
            self.settings,
            self.client_id,
            on_message=self._on_message,
            clock=self._clock,
            monotonic=self._monotonic,
            max_inflight=self._max_inflight,
        )
        try:
            session.open()
        except ReceiveMaximumLower as exc:
            self._max_inflight = exc.receive_maximum
            raise
        return session

    def _up(self, session: Session, failures: int, seconds: float) -> None:
        self._metrics.broker_connects.inc()
        self._metrics.broker_connected.set(1)
        self.connected_once.set()
        after = f" after {failures} failed attempts over {seconds:.1f} s" if failures else ""
        log.info(
            "connected to %s as %s (session %s)%s",
            session.address,
            self.client_id,
            "resumed" if session.session_present else "new",
            after,
        )

    def _down(self, session: Session) -> None:
        self._metrics.broker_connected.set(0)
