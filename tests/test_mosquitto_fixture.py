"""The private-broker fixture itself: plain and TLS, over MQTT v5, with a restart."""

from __future__ import annotations

import ssl
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.mosquitto import Mosquitto, make_tls_files


def roundtrip(broker: Mosquitto, *, tls: bool = False) -> bytes:
    got = threading.Event()
    received: list[bytes] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if tls:
        assert broker.tls is not None
        client.tls_set(
            ca_certs=str(broker.tls.ca_cert),
            certfile=str(broker.tls.client_cert),
            keyfile=str(broker.tls.client_key),
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )

    def on_message(c: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        received.append(msg.payload)
        got.set()

    subscribed = threading.Event()
    client.on_message = on_message
    client.on_subscribe = lambda *a: subscribed.set()
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        client.subscribe("t/#", qos=1)
        assert subscribed.wait(5)
        client.publish("t/x", b"hello", qos=1).wait_for_publish(5)
        assert got.wait(5), broker.log
    finally:
        client.disconnect()
        client.loop_stop()
    return received[0]


def test_plain_broker_roundtrip_and_restart(tmp_path: Path) -> None:
    with Mosquitto(tmp_path / "b") as broker:
        assert roundtrip(broker) == b"hello"
        port = broker.port
        broker.restart(kill=True)
        assert broker.port == port
        assert roundtrip(broker) == b"hello"


def test_mutual_tls_broker(tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path / "pki")
    with Mosquitto(tmp_path / "b", tls=tls, require_certificate=True) as broker:
        assert roundtrip(broker, tls=True) == b"hello"
