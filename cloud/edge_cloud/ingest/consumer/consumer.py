"""The ingest's MQTT consumer, wired: broker link → pipeline → store → acks.

``Consumer(settings, engine).start()`` connects (client id: ``consumer.identity``),
subscribes to ``$share/{mqtt.share_group}/devices/+/events`` and ``devices/+/status`` and
stores what arrives; ``stop()`` commits and acknowledges what it has received, then
disconnects, leaving its session with the broker for the next start.  It is also the
:class:`~edge_cloud.ingest.acks.AckPublisher` of ``POST /v1/import``, and gives the
readiness check its ``broker_connected``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial

import paho.mqtt.client as mqtt
from sqlalchemy.engine import Engine

from edge_cloud.ingest.acks import ack_messages
from edge_cloud.ingest.consumer.identity import ClientId, client_id
from edge_cloud.ingest.consumer.known_devices import KnownDevices, Verdict, fetch_device
from edge_cloud.ingest.consumer.link import BrokerLink
from edge_cloud.ingest.consumer.metrics import IngestMetrics
from edge_cloud.ingest.consumer.pipeline import Pipeline
from edge_cloud.ingest.settings import IngestSettings
from edge_cloud.ingest.store import DeviceAck, Store

log = logging.getLogger(__name__)

ACK_FLUSH_S = 5.0
"""On stop, how long to wait for the broker to take the last acks published."""


class Consumer:
    def __init__(
        self,
        settings: IngestSettings,
        engine: Engine,
        *,
        metrics: IngestMetrics | None = None,
        store: Store | None = None,
        check_device: Callable[[str], Verdict] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or IngestMetrics()
        self.store = store or Store(engine, quarantine_rows=settings.consumer.quarantine_rows)
        if check_device is None and settings.consumer.devices == "known":
            assert settings.auth.api_url is not None and settings.auth.api_key is not None  # settings check
            check_device = KnownDevices(
                partial(fetch_device, settings.auth.api_url, settings.auth.api_key),
                on_unavailable=self.metrics.device_check_failures.inc,
            ).check
        self.check_device = check_device
        """``consumer.devices = "known"``'s check (None: any device), for the import too."""
        self.client_id: ClientId = client_id(settings.mqtt, settings.state_dir)
        self.pipeline = Pipeline(self.store, self, self.metrics, settings.consumer, check_device=check_device)
        self.link = BrokerLink(
            settings.mqtt, self.client_id.value, on_message=self.pipeline.put, metrics=self.metrics
        )
        self._last_ack: mqtt.MQTTMessageInfo | None = None
        self._ack_lock = threading.Lock()

    def start(self) -> None:
        self.pipeline.start()
        self.link.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Commit and acknowledge what was received, publish its acks, disconnect."""
        drained = self.pipeline.stop(timeout)
        if not drained:
            log.warning("stopped with messages not stored (database unavailable): the broker keeps them")
        with self._ack_lock:
            last = self._last_ack
        if last is not None:
            # RuntimeError/ValueError: the connection went first; the devices send those
            # events again and are acknowledged then.
            with contextlib.suppress(RuntimeError, ValueError):
                last.wait_for_publish(ACK_FLUSH_S)
        self.link.stop()
        self.client_id.release()

    def broker_connected(self) -> bool:
        """Readiness: connected and subscribed."""
        return self.link.connected()

    def wait_connected(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.link.connected():
                return True
            self.link.connected_once.wait(0.05)
        return self.link.connected()

    def publish_acks(self, acks: Sequence[DeviceAck]) -> int:
        """Publish acks on the current connection; without one they are dropped and counted
        (the device sends those events again, and they are acknowledged then)."""
        session = self.link.session
        sent = 0
        for topic, payload in ack_messages(acks):
            info = session.publish(topic, payload) if session is not None else None
            if info is None:
                self.metrics.acks_dropped.inc()
                continue
            sent += 1
            with self._ack_lock:
                self._last_ack = info
        return sent
