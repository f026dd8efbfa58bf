"""Run the real ``edge-agent run`` as a subprocess on simulated sensors, and watch its broker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.outbox import OutboxError, read_stats
from edge_agent.service.status_server import StatusUnavailable, read_status, status_socket
from edge_protocol.wire import decode_batch
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


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass (no fixed sleeps in tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def outbox_ready(db: Path) -> bool:
    """The daemon has created (and migrated) its outbox."""
    try:
        read_stats(db)
    except (FileNotFoundError, OutboxError):
        return False
    return True


def pending(db: Path) -> int:
    """Pending events, or 0 while the daemon has not created the database yet."""
    try:
        return read_stats(db).pending
    except (FileNotFoundError, OutboxError):
        return 0


def left_pending_up_to(db: Path, upto: int) -> bool:
    """No event with seq <= ``upto`` is pending any more: the backlog up to there drained.
    (Not "pending is near 0": with the commit window and acknowledged deletes carried by
    the next append, a few windows of fresh readings are always pending in steady state.)"""
    try:
        oldest = read_stats(db).oldest_seq
    except (FileNotFoundError, OutboxError):
        return False
    return oldest is None or oldest > upto


def daemon_status(state: Path) -> dict[str, Any] | None:
    """The running daemon's status over its socket (None while it does not answer)."""
    try:
        return read_status(status_socket(state))
    except StatusUnavailable:
        return None


def write_config(
    directory: Path,
    broker: Mosquitto,
    *,
    interval: str = "50ms",
    mqtt_extra: str = "",
    storage_extra: str = "",
    state_dir: Path | None = None,
) -> Path:
    path = directory / "edge-agent.toml"
    path.write_text(
        f"""
[device]
id = "crash-test"
clock_check = "none"

[storage]
state_dir = "{state_dir or directory / "state"}"
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

    def __init__(
        self,
        broker: Mosquitto,
        device_id: str,
        *,
        persistent: bool = False,
        username: str | None = None,
        password: str | None = None,
        ca_file: Path | None = None,
    ) -> None:
        self.events: list[dict[str, Any]] = []
        self.statuses: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-sub", protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._ready.set()
        self.device_id = device_id
        if username is not None:
            self.client.username_pw_set(username, password)
        if ca_file is not None:
            self.client.tls_set(ca_certs=str(ca_file))
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

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e["kind"] == kind]

    def announced_evicted(self, reason: str | None = None) -> set[int]:
        """Every seq that a ``gap`` event received says was evicted."""
        return {
            seq
            for gap in self.of_kind("gap")
            if reason is None or gap["data"]["reason"] == reason
            for first, last in gap["data"]["evicted"]
            for seq in range(first, last + 1)
        }

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
