"""A batch on the wire: the events topic, the PUBLISH properties, and the payload bytes.

The payload is :func:`edge_protocol.wire.encode_batch`'s bytes exactly, made by joining the
envelopes' stored JSON texts instead of decoding and encoding them again.  The byte limit a
batch is cut to is ``batch_max_bytes``, lowered per session to fit the broker's Maximum
Packet Size.
"""

from __future__ import annotations

import zlib

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.events import StoredEvent
from edge_agent.settings import MQTTSettings
from edge_protocol.wire import CONTENT_ENCODING_PROPERTY, ZLIB, encode_batch, events_topic

PACKET_OVERHEAD = 128
"""Fixed header, topic and properties around a payload, generously."""


class BatchEncoder:
    def __init__(self, settings: MQTTSettings, device_id: str) -> None:
        self._settings = settings
        self.topic = events_topic(device_id)
        self._compression = settings.compression
        self.properties: Properties | None = None
        """The PUBLISH properties of every batch: ``content-encoding`` when compressed."""
        if settings.compression == ZLIB:
            self.properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            self.properties.UserProperty = (CONTENT_ENCODING_PROPERTY, ZLIB)
        empty = encode_batch(device_id, []).decode()
        self.overhead = len(empty.encode())
        """Bytes of the JSON around the envelopes (what a batch of none costs)."""
        self._head = empty.removesuffix("]}")
        self.max_bytes = settings.batch_max_bytes
        """Most bytes of uncompressed JSON in one batch on the current session."""

    def limit_to(self, maximum_packet_size: int | None) -> None:
        """A new session: ``batch_max_bytes``, within the broker's Maximum Packet Size if it has one."""
        self.max_bytes = self._settings.batch_max_bytes
        if maximum_packet_size:
            limit = maximum_packet_size - len(self.topic) - PACKET_OVERHEAD
            self.max_bytes = max(1024, min(self.max_bytes, limit))

    def payload(self, events: list[StoredEvent]) -> bytes:
        """The batch payload: :func:`edge_protocol.wire.encode_batch`'s bytes exactly.

        When the outbox hands over each envelope's stored JSON text (``body``, the compact
        form ``encode_batch`` writes), the texts are joined instead of decoded and encoded
        again: the largest cost of a drain on a small CPU.
        """
        raw = (self._head + ",".join(e.body for e in events) + "]}").encode()
        return zlib.compress(raw, 6) if self._compression == ZLIB else raw
