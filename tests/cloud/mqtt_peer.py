"""A small synchronous MQTT v5 client for the broker tests (paho 2.x, its own thread).

It records what happened — CONNACK, disconnects, PUBACK reason codes, messages — so a
test can wait for a condition and then assert on it.  paho's automatic reconnect is off
(``loop_start`` reconnects only after a first success; we never call reconnect), so a
refused or cut session stays visible.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


@dataclass
class Peer:
    port: int
    client_id: str
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    username: str | None = None
    password: str | None = None
    # Set: Clean Start 0 and this Session Expiry Interval (the broker keeps the session and
    # queues for it while we are away); unset: a session that ends with the connection.
    session_expiry: int | None = None
    connack: int | None = None
    disconnects: list[int] = field(default_factory=list)
    pubacks: dict[int, int] = field(default_factory=dict)
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    error: str | None = None
    subscribed: bool = False

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5)
        if self.ca is not None:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca))
            if self.cert is not None and self.key is not None:
                ctx.load_cert_chain(str(self.cert), str(self.key))
            client.tls_set_context(ctx)
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self.client = client

    # paho callbacks (its thread)
    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Properties | None) -> None:
        self.connack = rc.value

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Properties | None) -> None:
        self.disconnects.append(rc.value)

    def _on_publish(self, _c: Any, _u: Any, mid: int, rc: ReasonCode, _p: Properties | None) -> None:
        self.pubacks[mid] = rc.value

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, msg.payload))

    def _on_subscribe(self, *_args: Any) -> None:
        self.subscribed = True

    def connect(self, timeout: float = 15.0) -> bool:
        """True if the broker accepted the session; False if it was refused or cut during the handshake."""
        properties = None
        if self.session_expiry is not None:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = self.session_expiry
        try:
            self.client.connect(
                "127.0.0.1",
                self.port,
                keepalive=30,
                clean_start=self.session_expiry is None,
                properties=properties,
            )
        except (OSError, ssl.SSLError) as exc:
            self.error = str(exc)
            return False
        self.client.loop_start()
        wait_for(lambda: self.connack is not None or bool(self.disconnects), timeout, "CONNACK or disconnect")
        if self.connack == 0 and not self.disconnects:
            return True
        self.close()
        return False

    @property
    def connected(self) -> bool:
        return self.connack == 0 and not self.disconnects

    def publish(self, topic: str, payload: bytes = b"x", timeout: float = 15.0) -> int:
        """Publish at QoS 1 and return the PUBACK reason code (0 = accepted, 0x87 = not authorised)."""
        info = self.client.publish(topic, payload, qos=1)
        wait_for(lambda: info.mid in self.pubacks or bool(self.disconnects), timeout, f"PUBACK on {topic}")
        if info.mid not in self.pubacks:
            raise ConnectionError(f"disconnected before the PUBACK on {topic}: {self.disconnects}")
        return self.pubacks[info.mid]

    def subscribe(self, topic: str) -> None:
        self.subscribed = False
        self.client.subscribe(topic, qos=1)
        wait_for(lambda: self.subscribed, what=f"SUBACK for {topic}")

    def received(self, topic: str | None = None) -> list[bytes]:
        with self._lock:
            return [p for t, p in self.messages if topic is None or t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
