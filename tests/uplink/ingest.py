"""A small acknowledging "ingest stand-in": what the cloud's ingest does, in a test.

Subscribes ``devices/+/events`` (QoS 1), decodes each batch with
:func:`edge_protocol.wire.decode_batch` (honouring the ``content-encoding`` user
property), stores the envelopes in arrival order, and — when ``ack`` is on — publishes
``{"epoch": …, "seqs": [[first, last], …]}`` to ``devices/{id}/acks`` (QoS 1) for what it
stored.  With ``ack=False`` it is a plain observer.  It runs paho's own network thread and
reconnects by itself (a test helper, not product code), subscribing again on every connect.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_protocol.wire import (
    CONTENT_ENCODING_PROPERTY,
    acks_topic,
    decode_batch,
    device_of_topic,
    seq_ranges,
)


@dataclass(frozen=True)
class Received:
    topic: str
    content_encoding: str | None
    payload: bytes
    envelopes: list[dict[str, Any]]
    at: float


class IngestStandIn:
    def __init__(
        self,
        port: int,
        *,
        ack: bool = True,
        client_id: str = "ingest-stand-in",
        persistent: bool = False,
        username: str | None = None,
        password: str | None = None,
        ca_file: Path | None = None,
        cert: tuple[Path, Path] | None = None,
    ) -> None:
        self.port = port
        self.ack = ack
        self.persistent = persistent
        self.lock = threading.Lock()
        self.messages: list[Received] = []
        self.errors: list[str] = []
        self.acks_sent = 0
        self.statuses: list[dict[str, Any]] = []
        """Every status message seen (retained ones included), in order."""
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.reconnect_delay_set(0.05, 0.5)
        if username is not None:
            self.client.username_pw_set(username, password)
        if ca_file is not None:
            self.client.tls_set(
                ca_certs=str(ca_file),
                certfile=str(cert[0]) if cert else None,
                keyfile=str(cert[1]) if cert else None,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> IngestStandIn:
        props = Properties(PacketTypes.CONNECT)
        clean = True
        if self.persistent:
            props.SessionExpiryInterval = 600
            clean = False
        self.client.connect("127.0.0.1", self.port, keepalive=10, clean_start=clean, properties=props)
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            raise RuntimeError("ingest stand-in did not subscribe")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> IngestStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_resubscribed(self, timeout: float = 10.0) -> bool:
        return self._subscribed.wait(timeout)

    # -- what arrived ------------------------------------------------------------------

    def envelopes(self) -> list[dict[str, Any]]:
        with self.lock:
            return [e for m in self.messages for e in m.envelopes]

    def seqs(self) -> list[int]:
        return [e["seq"] for e in self.envelopes()]

    def wait_for(self, predicate: Callable[[IngestStandIn], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.01)
        return predicate(self)

    def has_seqs(self, seqs: set[int]) -> bool:
        return seqs <= set(self.seqs())

    # -- paho callbacks (paho's thread) ------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self._subscribed.clear()
        client.subscribe([("devices/+/events", 1), ("devices/+/status", 1)])

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.endswith("/status"):
            with self.lock:
                self.statuses.append(json.loads(msg.payload) if msg.payload else {})
            return
        props = dict(getattr(msg.properties, "UserProperty", None) or [])
        encoding = props.get(CONTENT_ENCODING_PROPERTY)
        try:
            batch = decode_batch(msg.payload, encoding)
        except ValueError as exc:
            with self.lock:
                self.errors.append(f"{msg.topic}: {exc}")
            return
        envelopes = [e.model_dump() for e in batch.events]
        with self.lock:
            self.messages.append(
                Received(msg.topic, encoding, bytes(msg.payload), envelopes, time.monotonic())
            )
        device = device_of_topic(msg.topic)
        if self.ack and device is not None:
            # Acknowledge per epoch (a batch normally holds one).
            by_epoch: dict[str, list[int]] = {}
            for e in envelopes:
                by_epoch.setdefault(e["epoch"], []).append(e["seq"])
            for epoch, seqs in by_epoch.items():
                body = json.dumps({"epoch": epoch, "seqs": seq_ranges(seqs)})
                client.publish(acks_topic(device), body, qos=1)
                self.acks_sent += 1
