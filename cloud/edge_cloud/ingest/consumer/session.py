"""One MQTT v5 connection of the consumer: a :class:`~edge_cloud.ingest.mqtt_link.Connection`
(a fresh paho client, never reused; reconnecting is
:mod:`~edge_cloud.ingest.consumer.link`'s job) with manual acks.  That is what makes
manual acks safe: a message is PUBACKed through the session it came from, and a PUBACK for
a session that has ended goes nowhere, instead of acknowledging, under a reused packet id,
a message of the next connection that was never stored.

The network thread only hands messages on (``on_message`` puts them in a queue); the
other threads publish and PUBACK through paho, which queues the packets for its thread
(with ``loop_start`` no other thread writes to the socket).

CONNECT carries Clean Start 0 with ``mqtt.session_expiry`` (the broker keeps our
subscriptions and what is queued for us while we are away) and ``mqtt.receive_maximum``
(the broker sends no more unacknowledged messages than that, so a slow database holds
messages at the broker, not in our memory).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from edge_cloud.ingest.errors import BrokerUnavailable
from edge_cloud.ingest.mqtt_link import INFLIGHT, Connection
from edge_cloud.ingest.settings import MQTTSettings
from edge_protocol.wire import CONTENT_ENCODING_PROPERTY

MAX_SESSION_EXPIRY = 0xFFFFFFFF
EVENTS_FILTER = "devices/+/events"
STATUS_FILTER = "devices/+/status"
ACKS_INFLIGHT = INFLIGHT
"""Our own unacknowledged QoS 1 publishes (the acks) on the wire at once.  A broker
announcing a Receive Maximum under it is connected to again with its figure
(:class:`ReceiveMaximumLower`)."""


class ReceiveMaximumLower(BrokerUnavailable):
    """The broker takes fewer unacknowledged publishes than we were set for: connect again
    with ``receive_maximum``."""

    def __init__(self, address: str, receive_maximum: int) -> None:
        super().__init__(f"{address} takes at most {receive_maximum} unacknowledged publishes")
        self.receive_maximum = receive_maximum


@dataclass(frozen=True)
class Received:
    """A message as the network thread hands it on."""

    session: Session
    topic: str
    payload: bytes
    qos: int
    mid: int
    retain: bool
    content_encoding: str | None
    received_at: float
    """Wall time (seconds since the epoch)."""
    received_mono: float


def subscriptions(share_group: str) -> list[tuple[str, SubscribeOptions]]:
    events = SubscribeOptions(qos=1)
    # Retained births/wills once per subscription: a resumed session already had them.
    status = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
    return [(f"$share/{share_group}/{EVENTS_FILTER}", events), (STATUS_FILTER, status)]


class Session(Connection):
    """One connection of the consumer: manual acks, Clean Start 0, session expiry and
    Receive Maximum.  :meth:`open` connects and subscribes or raises
    :class:`BrokerUnavailable`; ``ended`` is set when the connection is gone."""

    def __init__(
        self,
        settings: MQTTSettings,
        client_id: str,
        *,
        on_message: Callable[[Received], None],
        clock: Callable[[], float],
        monotonic: Callable[[], float],
        max_inflight: int = ACKS_INFLIGHT,
    ) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = min(int(settings.session_expiry), MAX_SESSION_EXPIRY)
        props.ReceiveMaximum = settings.receive_maximum
        super().__init__(
            settings,
            client_id,
            subscriptions=subscriptions(settings.share_group),
            clean_start=False,
            properties=props,
            manual_ack=True,
            max_inflight=max_inflight,
        )
        self._on_message = on_message
        self._clock = clock
        self._monotonic = monotonic
        self.client.on_message = self._handle_message

    def _accepted(self) -> None:
        limit = self.broker_receive_maximum
        if limit is not None and limit < self.max_inflight:
            raise ReceiveMaximumLower(self.address, limit)

    # -- used by the other threads ----------------------------------------------------

    def ack(self, mid: int, qos: int) -> None:
        """PUBACK a message of this session (nothing, once the session has ended)."""
        if qos > 0 and not self.ended.is_set():
            self.client.ack(mid, qos)

    def publish(self, topic: str, payload: bytes) -> mqtt.MQTTMessageInfo | None:
        """QoS 1, not retained; None when this session has ended."""
        if self.ended.is_set():
            return None
        info = self.client.publish(topic, payload, qos=1)
        return None if info.rc == mqtt.MQTT_ERR_NO_CONN else info

    # -- paho's thread ----------------------------------------------------------------

    def _handle_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        encoding = None
        for key, value in getattr(msg.properties, "UserProperty", None) or []:
            if key == CONTENT_ENCODING_PROPERTY:
                encoding = str(value)
        self._on_message(
            Received(
                self,
                msg.topic,
                bytes(msg.payload),
                msg.qos,
                msg.mid,
                bool(msg.retain),
                encoding,
                self._clock(),
                self._monotonic(),
            )
        )
