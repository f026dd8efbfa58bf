"""End-to-end acknowledgements: what a committed transaction tells each device.

``devices/{id}/acks``, QoS 1, not retained: ``{"epoch": …, "seqs": [[first, last], …]}``
(``edge_protocol.wire.Ack``; docs/PROTOCOL.md), one per device and epoch of the
transaction, covering every seq it held: stored, duplicate, or refused one by one.
Published only after the commit.  A large transaction's ranges are split so that no ack
passes the device's limit (1 MiB, 100,000 ranges).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from edge_cloud.ingest.store.model import DeviceAck
from edge_protocol.wire import Ack, acks_topic

MAX_RANGES = 10_000
"""Ranges per ack message (the device accepts up to 100,000 and 1 MiB)."""


def ack_messages(acks: Sequence[DeviceAck]) -> Iterator[tuple[str, bytes]]:
    """``(topic, payload)`` of every ack message to publish."""
    for ack in acks:
        for i in range(0, len(ack.seqs), MAX_RANGES):
            body = Ack(epoch=ack.epoch, seqs=list(ack.seqs[i : i + MAX_RANGES]))
            yield acks_topic(ack.device_id), body.model_dump_json().encode()


class AckPublisher(Protocol):
    def publish_acks(self, acks: Sequence[DeviceAck]) -> int:
        """Publish the acks of a committed transaction; how many messages went out."""
