"""A device as the ingest sees it: publishes raw payloads on its topics, records its acks."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_protocol.wire import CONTENT_ENCODING_PROPERTY, acks_topic, events_topic, status_topic


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


class DevicePublisher:
    def __init__(self, port: int, device_id: str, *, client_id: str | None = None) -> None:
        self.device_id = device_id
        self.acks: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id or f"dev-{device_id}", protocol=mqtt.MQTTv5
        )
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        self.client.subscribe(acks_topic(device_id), qos=1)
        assert self._subscribed.wait(5), "no SUBACK for the acks"

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.acks.append(json.loads(msg.payload))

    def publish(
        self, payload: bytes, *, topic: str | None = None, zlib: bool = False, retain: bool = False
    ) -> None:
        props = None
        if zlib:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.UserProperty = [(CONTENT_ENCODING_PROPERTY, "zlib")]
        info = self.client.publish(
            topic or events_topic(self.device_id), payload, qos=1, retain=retain, properties=props
        )
        info.wait_for_publish(5)

    def status(self, body: dict[str, Any], *, retain: bool = True) -> None:
        self.publish(json.dumps(body).encode(), topic=status_topic(self.device_id), retain=retain)

    def acked(self, epoch: str | None = None) -> set[int]:
        """Every seq some ack named (of ``epoch``)."""
        with self._lock:
            return {
                s
                for ack in self.acks
                if epoch is None or ack["epoch"] == epoch
                for first, last in ack["seqs"]
                for s in range(first, last + 1)
            }

    def ack_count(self) -> int:
        with self._lock:
            return len(self.acks)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
