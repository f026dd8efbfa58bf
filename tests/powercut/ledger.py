"""Who saw which event: the ingest's record and the daemon's commit log, checked for reissued seqs.

An event is ``(epoch, seq, id)``.  :class:`Ledger` keeps, per ``(epoch, seq)``, every id
any source ever attached to it; two ids for one position is a *reissued seq*: a committed
(and possibly published) event was lost and its seq handed to another.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from edge_protocol.wire import (
    CONTENT_ENCODING_PROPERTY,
    acks_topic,
    decode_batch,
    device_of_topic,
    seq_ranges,
)
from tests.uplink.ingest import IngestStandIn

Event = tuple[str, int, str]
"""(epoch, seq, id)"""


@dataclass
class Ledger:
    ids: dict[tuple[str, int], set[str]] = field(default_factory=dict)
    reissued: list[str] = field(default_factory=list)

    def note(self, source: str, epoch: str, seq: int, event_id: str) -> None:
        known = self.ids.setdefault((epoch, seq), set())
        if known and event_id not in known:
            self.reissued.append(f"{source}: epoch {epoch} seq {seq} is now {event_id}, was {sorted(known)}")
        known.add(event_id)


class RecordingIngest(IngestStandIn):
    """The acking ingest stand-in that also remembers what it saw and what it acknowledged.

    ``ack`` can be switched off (the events pile up on the device, which then evicts).
    """

    def __init__(self, port: int) -> None:
        super().__init__(port, ack=True, client_id="powercut-ingest", persistent=True)
        self.seen: set[Event] = set()
        self.acked: set[Event] = set()
        self.gaps: list[tuple[str, list[list[int]]]] = []
        """(epoch, evicted ranges) of every gap event seen."""
        self.last_arrival = time.monotonic()

    def set_ack(self, on: bool) -> None:
        with self.lock:
            self.ack = on

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.endswith("/status"):
            return
        props = dict(getattr(msg.properties, "UserProperty", None) or [])
        try:
            batch = decode_batch(msg.payload, props.get(CONTENT_ENCODING_PROPERTY))
        except ValueError as exc:
            with self.lock:
                self.errors.append(f"{msg.topic}: {exc}")
            return
        by_epoch: dict[str, list[int]] = {}
        with self.lock:
            acking = self.ack
            self.last_arrival = time.monotonic()
            for e in batch.events:
                event = (e.epoch, e.seq, e.id)
                self.seen.add(event)
                if e.kind == "gap" and "epoch" not in e.data:
                    self.gaps.append((e.epoch, e.data["evicted"]))
                if acking:
                    self.acked.add(event)
                    by_epoch.setdefault(e.epoch, []).append(e.seq)
        device = device_of_topic(msg.topic)
        for epoch, seqs in by_epoch.items():
            if device is not None:
                client.publish(
                    acks_topic(device), json.dumps({"epoch": epoch, "seqs": seq_ranges(seqs)}), qos=1
                )

    def settle(self, quiet: float = 0.25, timeout: float = 5.0) -> None:
        """Wait until nothing has arrived for ``quiet`` seconds (what was in flight is in)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                idle = time.monotonic() - self.last_arrival
            if idle >= quiet:
                return
            time.sleep(0.05)

    def snapshot(self) -> tuple[set[Event], set[Event], list[tuple[str, list[list[int]]]]]:
        with self.lock:
            return set(self.seen), set(self.acked), list(self.gaps)


def read_commit_log(path: Path) -> list[Event]:
    """The ``<epoch> <seq> <id>`` lines the daemon wrote; a torn last line (SIGKILL) is skipped."""
    if not path.exists():
        return []
    text = path.read_text()
    # Only lines that reached their newline: SIGKILL can stop a long write() between pages,
    # and a line cut inside its id ("… 638 0") still has three parts.
    complete = text[: text.rfind("\n") + 1]
    events = []
    for line in complete.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit():
            events.append((parts[0], int(parts[1]), parts[2]))
    return events
