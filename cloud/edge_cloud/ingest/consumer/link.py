"""Keeping the consumer connected: one :class:`Session` at a time, reconnected with jitter.

A thread opens a session, waits for it to end, and opens the next, retrying with
tenacity's full-jitter exponential backoff (a random wait in ``[0, min(reconnect_max,
0.5 s · 2ⁿ)]``), so a fleet of ingest processes that lost their broker together do not
come back together.  One WARNING per series of failed attempts, INFO when connected.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_random_exponential

from edge_cloud.ingest.consumer.metrics import IngestMetrics
from edge_cloud.ingest.consumer.session import ACKS_INFLIGHT, Received, ReceiveMaximumLower, Session
from edge_cloud.ingest.errors import BrokerUnavailable
from edge_cloud.ingest.settings import MQTTSettings

log = logging.getLogger(__name__)


class BrokerLink:
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
        self.settings = settings
        self.client_id = client_id
        self._on_message = on_message
        self._metrics = metrics
        self._clock = clock
        self._monotonic = monotonic
        self._stop = threading.Event()
        self._session: Session | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="ingest-mqtt", daemon=True)
        self._failures = 0
        self._max_inflight = ACKS_INFLIGHT
        self.connected_once = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Close the current session (the broker keeps it: messages not acknowledged are
        delivered again to this client id) and stop reconnecting."""
        self._stop.set()
        with self._lock:
            session = self._session
        if session is not None:
            session.close("stopping")
        self._thread.join(timeout=15)

    @property
    def session(self) -> Session | None:
        """The connected session, or None."""
        with self._lock:
            session = self._session
        return session if session is not None and not session.ended.is_set() else None

    def connected(self) -> bool:
        return self.session is not None

    # -- the thread -------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            session = self._connect()
            if session is None:
                return
            with self._lock:
                self._session = session
            if self._stop.is_set():  # stop() may have looked before the session was set
                session.close("stopping")
            self._metrics.broker_connected.set(1)
            session.ended.wait()
            self._metrics.broker_connected.set(0)
            with self._lock:
                self._session = None
            if not self._stop.is_set():
                log.warning("broker %s: %s; reconnecting", session.address, session.end_reason)
                session.close()

    def _connect(self) -> Session | None:
        """A connected session, retried with jittered backoff until one opens or stop()."""
        started = self._monotonic()
        self._failures = 0
        retrying = Retrying(
            retry=retry_if_exception_type(BrokerUnavailable),
            wait=wait_random_exponential(multiplier=0.5, max=self.settings.reconnect_max),
            stop=lambda _state: self._stop.is_set(),
            sleep=self._pause,
            before_sleep=self._failed,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    if self._stop.is_set():
                        return None
                    session = Session(
                        self.settings,
                        self.client_id,
                        on_message=self._on_message,
                        clock=self._clock,
                        monotonic=self._monotonic,
                        max_inflight=self._max_inflight,
                    )
                    try:
                        session.open(self.settings.share_group)
                    except ReceiveMaximumLower as exc:
                        self._max_inflight = exc.receive_maximum
                        raise
        except BrokerUnavailable:
            return None  # stopped while retrying
        self._metrics.broker_connects.inc()
        self.connected_once.set()
        after = (
            f" after {self._failures} failed attempts over {self._monotonic() - started:.1f} s"
            if self._failures
            else ""
        )
        log.info(
            "connected to %s as %s (session %s)%s",
            session.address,
            self.client_id,
            "resumed" if session.session_present else "new",
            after,
        )
        return session

    def _pause(self, seconds: float) -> None:
        self._stop.wait(seconds)  # stop() cuts the backoff short

    def _failed(self, state: RetryCallState) -> None:
        self._failures += 1
        exc = state.outcome.exception() if state.outcome is not None else None
        if self._failures == 1:
            log.warning("%s; retrying with backoff (up to %g s)", exc, self.settings.reconnect_max)
        else:
            log.debug("attempt %d: %s", self._failures, exc)
