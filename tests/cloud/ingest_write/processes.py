"""Real processes for the ingest tests: ``edge-ingest serve`` and ``edge-agent run``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.cloud.ingest_write.publisher import wait_for
from tests.mosquitto import Mosquitto, free_port


def ingest_config(
    directory: Path,
    database_url: str,
    broker: Mosquitto,
    *,
    state_dir: Path | None = None,
    batch_max_events: int = 5000,
    receive_maximum: int = 64,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "edge-ingest.toml"
    path.write_text(
        f"""
state_dir = "{state_dir or directory / "state"}"
log_level = "debug"

[server]
port = {free_port()}

[database]
url = "{database_url}"

[mqtt]
host = "127.0.0.1"
port = {broker.port}
keepalive = "5s"
reconnect_max = "0.5s"
receive_maximum = {receive_maximum}

[consumer]
batch_max_events = {batch_max_events}
batch_max_wait = "0.05s"
"""
    )
    return path


class IngestProcess:
    """``python -m edge_cloud.ingest serve`` with its output in ``log``."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log_path = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 30) -> IngestProcess:
        connected_before = self.log.count("connected to")
        env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "edge_cloud.ingest", "serve", "--config", str(self.config)],
                stdout=out,
                stderr=out,
                env=env,
            )
        wait_for(
            lambda: self.log.count("connected to") > connected_before or self.process.poll() is not None,  # type: ignore[union-attr]
            timeout,
            "edge-ingest serve to connect",
        )
        assert self.process.poll() is None, self.log[-3000:]
        return self

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stored(self) -> int:
        """Events this process reported stored (its debug log of each commit)."""
        return sum(int(n) for n in re.findall(r"(\d+) events stored", self.log))

    def duplicates(self) -> int:
        return sum(int(n) for n in re.findall(r"(\d+) duplicates", self.log))

    def stop(self, *, kill: bool = False, timeout: float = 30) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        return self.process.wait(timeout)


AGENT_SENSORS = """
[[sensors]]
name = "climate"
driver = "bme280"
bus = "sim"
address = 0x76
interval = "{interval}"
enabled = {enabled}

[[sensors]]
name = "cabinet"
driver = "sht3x"
bus = "sim"
address = 0x44
interval = "{interval}"
enabled = {enabled}
"""


def agent_config(
    directory: Path,
    broker: Mosquitto,
    device_id: str,
    *,
    interval: str = "50ms",
    sampling: bool = True,
    max_age: str | None = None,
) -> Path:
    """An agent in end-to-end delivery on simulated sensors (``sampling=False``: only drains;
    ``max_age``: its outbox's age cap, ``storage.max_age``)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / ("edge-agent.toml" if sampling else "edge-agent-drain.toml")
    path.write_text(
        f"""
[device]
id = "{device_id}"
clock_check = "none"

[storage]
state_dir = "{directory / "state"}"
{f'max_age = "{max_age}"' if max_age is not None else ""}

[mqtt]
host = "127.0.0.1"
port = {broker.port}
delivery = "end-to-end"
ack_timeout = "2s"
reconnect_min = "0.2s"
reconnect_max = "1s"
batch_max_events = 50

[metrics]
enabled = false
"""
        + AGENT_SENSORS.format(interval=interval, enabled="true" if sampling else "false")
    )
    return path
