"""Run the real ``edge-agent run`` as a subprocess on simulated sensors, and watch its broker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.protocol import decode_batch
from tests.mosquitto import Mosquitto

FAST_SENSORS = """
[[sensors]]
name = "climate"
driver = "bme280"
bus = "sim"
address = 0x76
interval = "{interval}"

[[sensors]]
name = "cabinet"
driver = "sht3x"
bus = "sim"
address = 0x44
interval = "{interval}"
"""


def write_config(
    directory: Path,
    broker: Mosquitto,
    *,
    interval: str = "50ms",
    mqtt_extra: str = "",
    storage_extra: str = "",
) -> Path:
    path = directory / "edge-agent.toml"
    path.write_text(
        f"""
[device]
id = "crash-test"
clock_check = "none"

[storage]
state_dir = "{directory / "state"}"
{storage_extra}

[mqtt]
host = "127.0.0.1"
port = {broker.port}
reconnect_min = "0.2s"
reconnect_max = "1s"
{mqtt_extra}

[metrics]
listen = "127.0.0.1:0"
"""
        + FAST_SENSORS.format(interval=interval)
    )
    return path


def start_agent(config: Path, log: Path, extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")} | (extra_env or {})
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "run", "--config", str(config)],
            stdout=out,
            stderr=out,
            env=env,
        )


def stop_agent(process: subprocess.Popen[bytes], *, kill: bool = False, timeout: float = 30) -> int:
    process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    return process.wait(timeout=timeout)


class Subscriber:
    """Records every event envelope published for a device (a persistent QoS 1 session)."""

    def __init__(self, broker: Mosquitto, device_id: str, *, persistent: bool = False) -> None:
        self.events: list[dict[str, Any]] = []
        self.statuses: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-sub", protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._ready.set()
        self.device_id = device_id
        properties = None
        if persistent:  # the broker queues our QoS 1 messages while we (or it) are away
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", broker.port, clean_start=not persistent, properties=properties)
        self.client.subscribe([(f"devices/{device_id}/events", 1), (f"devices/{device_id}/status", 1)])
        self.client.loop_start()
        assert self._ready.wait(5), "subscription not acknowledged"

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            if msg.topic.endswith("/status"):
                self.statuses.append(json.loads(msg.payload))
                return
            encoding = None
            props = getattr(msg, "properties", None)
            for key, value in getattr(props, "UserProperty", []) or []:
                if key == "content-encoding":
                    encoding = value
            batch = decode_batch(msg.payload, encoding)
            self.events.extend(e.model_dump() for e in batch.events)

    def seqs(self, epoch: str | None = None) -> set[int]:
        with self._lock:
            return {e["seq"] for e in self.events if epoch is None or e["epoch"] == epoch}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
