"""One MQTT v5 connection of the consumer: a fresh paho client, never reused.

paho runs its own network thread (``loop_start``) with its automatic reconnect off
(``reconnect_on_failure=False``): reconnecting, with jittered backoff, is
:mod:`~edge_cloud.ingest.consumer.link`'s job, and each connection gets a new client.
That is what makes manual acks safe: a message is PUBACKed through the session it came
from, and a PUBACK for a session that has ended goes nowhere, instead of acknowledging,
under a reused packet id, a message of the next connection that was never stored.

The network thread only hands messages on (``on_message`` puts them in a queue); the
other threads publish and PUBACK through paho, which queues the packets for its thread
(with ``loop_start`` no other thread writes to the socket).

CONNECT carries Clean Start 0 with ``mqtt.session_expiry`` (the broker keeps our
subscriptions and what is queued for us while we are away) and ``mqtt.receive_maximum``
(the broker sends no more unacknowledged messages than that, so a slow database holds
messages at the broker, not in our memory).
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from edge_cloud.ingest.errors import BrokerUnavailable
from edge_cloud.ingest.settings import MQTTSettings
from edge_protocol.wire import CONTENT_ENCODING_PROPERTY

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
"""Seconds for TCP, TLS and CONNACK together; and for the SUBACK."""
MAX_SESSION_EXPIRY = 0xFFFFFFFF
EVENTS_FILTER = "devices/+/events"
STATUS_FILTER = "devices/+/status"
ACKS_INFLIGHT = 20
"""Our own unacknowledged QoS 1 publishes (the acks) paho keeps on the wire at once; the
rest wait in paho's queue.  20 is Mosquitto's default Receive Maximum
(``max_inflight_messages``): paho does not keep to the broker's by itself, and Mosquitto
disconnects a client that goes over it.  A broker announcing less is connected to again
with its figure (:class:`ReceiveMaximumLower`)."""


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


class Session:
    """One connection.  :meth:`open` connects and subscribes or raises
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
        self.settings = settings
        self.client_id = client_id
        self.max_inflight = max_inflight
        self.broker_receive_maximum: int | None = None
        self.ended = threading.Event()
        self.end_reason = ""
        self.session_present = False
        self._on_message = on_message
        self._clock = clock
        self._monotonic = monotonic
        self._connack = threading.Event()
        self._connack_reason: ReasonCode | None = None
        self._suback = threading.Event()
        self._suback_codes: list[ReasonCode] = []
        self._closing = False
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
            reconnect_on_failure=False,
        )
        self._client.max_inflight_messages_set(max_inflight)
        self._client.max_queued_messages_set(0)
        if settings.username is not None:
            self._client.username_pw_set(settings.username, settings.password)
        self._client.on_connect = self._handle_connect
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_subscribe = self._handle_subscribe
        self._client.on_message = self._handle_message

    @property
    def address(self) -> str:
        s = self.settings
        return f"{s.host}:{s.port}" + (" (TLS)" if s.tls else "")

    # -- opening and closing ----------------------------------------------------------

    def open(self, share_group: str) -> None:
        """Connect, wait for an accepted CONNACK, subscribe, wait for the SUBACK."""
        s = self.settings
        if s.tls is not None:
            self._client.tls_set_context(tls_context(s))
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = min(int(s.session_expiry), MAX_SESSION_EXPIRY)
        props.ReceiveMaximum = s.receive_maximum
        try:
            self._client.connect(
                s.host, s.port, keepalive=int(s.keepalive), clean_start=False, properties=props
            )
        except (OSError, ValueError) as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError is an OSError)
            raise BrokerUnavailable(f"cannot connect to {self.address}: {exc}") from exc
        self._client.loop_start()
        try:
            if not self._connack.wait(CONNECT_TIMEOUT):
                raise BrokerUnavailable(f"no CONNACK from {self.address} within {CONNECT_TIMEOUT:.0f} s")
            reason = self._connack_reason
            if reason is None or reason.is_failure:
                raise BrokerUnavailable(f"{self.address} refused the connection: {reason}")
            limit = self.broker_receive_maximum
            if limit is not None and limit < self.max_inflight:
                raise ReceiveMaximumLower(self.address, limit)
            self._subscribe(share_group)
        except BrokerUnavailable:
            self.close()
            raise

    def _subscribe(self, share_group: str) -> None:
        events = SubscribeOptions(qos=1)
        # Retained births/wills once per subscription: a resumed session already had them.
        status = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        rc, _mid = self._client.subscribe(
            [(f"$share/{share_group}/{EVENTS_FILTER}", events), (STATUS_FILTER, status)]
        )
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise BrokerUnavailable(f"cannot subscribe on {self.address}: {mqtt.error_string(rc)}")
        if not self._suback.wait(CONNECT_TIMEOUT):
            raise BrokerUnavailable(f"no SUBACK from {self.address} within {CONNECT_TIMEOUT:.0f} s")
        refused = [str(code) for code in self._suback_codes if code.is_failure]
        if refused:
            # Without its subscriptions the ingest would sit connected and receive nothing.
            raise BrokerUnavailable(f"{self.address} refused the subscriptions: {', '.join(refused)}")

    def close(self, reason: str = "closed") -> None:
        """DISCONNECT (the broker keeps the session for ``session_expiry``) and stop the thread."""
        self._closing = True
        if not self.ended.is_set():
            self.end_reason = reason
        self._client.disconnect()
        self._client.loop_stop()
        self.ended.set()

    # -- used by the other threads ----------------------------------------------------

    def ack(self, mid: int, qos: int) -> None:
        """PUBACK a message of this session (nothing, once the session has ended)."""
        if qos > 0 and not self.ended.is_set():
            self._client.ack(mid, qos)

    def publish(self, topic: str, payload: bytes) -> mqtt.MQTTMessageInfo | None:
        """QoS 1, not retained; None when this session has ended."""
        if self.ended.is_set():
            return None
        info = self._client.publish(topic, payload, qos=1)
        return None if info.rc == mqtt.MQTT_ERR_NO_CONN else info

    # -- paho's thread ----------------------------------------------------------------

    def _handle_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self._connack_reason = reason
        self.session_present = bool(getattr(flags, "session_present", False))
        broker_max = getattr(props, "ReceiveMaximum", None)
        if isinstance(broker_max, int) and broker_max > 0:
            self.broker_receive_maximum = broker_max
        self._connack.set()

    def _handle_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        self._suback_codes = list(codes)
        self._suback.set()

    def _handle_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if not self.ended.is_set():
            self.end_reason = "closed" if self._closing else f"connection lost ({reason})"
        self.ended.set()

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


def tls_context(settings: MQTTSettings) -> ssl.SSLContext:
    """Verifies the broker against ``ca_file`` (host name included) and presents our
    certificate; the files are read again at every connection attempt."""
    tls = settings.tls
    assert tls is not None
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(tls.ca_file))
        ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    except (OSError, ssl.SSLError) as exc:
        raise BrokerUnavailable(f"cannot load the TLS files ({tls.ca_file}, {tls.cert_file}): {exc}") from exc
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx
