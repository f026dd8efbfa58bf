"""The command client's own MQTT v5 connection, kept up by a thread of its own.

Its client id is the consumer's plus ``-commands``: the consumer keeps a persistent session
under its id (docs/CLOUD_AUTH.md), and a second connection under that id would throw it off.
Same broker, TLS and identity settings as the consumer (``mqtt.*``).

It subscribes (not shared: a reply must reach the process that asked) to
``devices/+/responses/<client id>/#``, where its requests' replies go, and to
``devices/+/responses``, where a device sends its refusals of a request without a usable
response topic (every process gets those; the correlation data says whose they are).

Clean Start 1 and no session expiry: a reply is only of use to the request waiting for it
in this process, so nothing should be queued for a connection that has gone.

Each connection is a fresh paho client (paho's network thread, ``loop_start``; its own
reconnect off), reconnected by this module's thread with full-jitter backoff, as the
consumer's link does.  Not paho's automatic reconnect: paho re-sends after a reconnect the
QoS 1 publishes it still holds, and a request whose caller was told 503 when the
connection dropped must not be executed by the device afterwards.  A fresh client takes
nothing of the old connection with it.  The TLS files are read again at each attempt, so
a renewed certificate is picked up on the next reconnect.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_random_exponential

from edge_cloud.ingest.consumer.session import CONNECT_TIMEOUT, tls_context
from edge_cloud.ingest.errors import BrokerUnavailable, CommandUnavailable
from edge_cloud.ingest.settings import MQTTSettings

log = logging.getLogger(__name__)

CLIENT_ID_SUFFIX = "-commands"
INFLIGHT = 20
"""Our unacknowledged QoS 1 publishes on the wire at once (Mosquitto's default Receive
Maximum; paho does not keep to the broker's by itself).  More wait in paho's queue."""


@dataclass(frozen=True)
class Incoming:
    """A message as the network thread hands it on."""

    topic: str
    payload: bytes
    correlation: bytes | None


def commands_client_id(consumer_client_id: str) -> str:
    """The command connection's client id: never the consumer's (see the module doc)."""
    return consumer_client_id + CLIENT_ID_SUFFIX


def replies_filter(client_id: str) -> str:
    return f"devices/+/responses/{client_id}/#"


REFUSALS_FILTER = "devices/+/responses"


class _Connection:
    """One connection: a fresh paho client.  ``ended`` is set when it is gone."""

    def __init__(
        self,
        settings: MQTTSettings,
        client_id: str,
        generation: int,
        *,
        on_message: Callable[[Incoming], None],
        on_published: Callable[[int, int, ReasonCode], None],
    ) -> None:
        self.settings = settings
        self.generation = generation
        self.ended = threading.Event()
        self.end_reason = ""
        self._client_id = client_id
        self._on_message = on_message
        self._on_published = on_published
        self._connack = threading.Event()
        self._connack_reason: ReasonCode | None = None
        self._suback = threading.Event()
        self._suback_codes: list[ReasonCode] = []
        self._closing = False
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=False,
        )
        self.client.max_inflight_messages_set(INFLIGHT)
        self.client.max_queued_messages_set(0)
        if settings.username is not None:
            self.client.username_pw_set(settings.username, settings.password)
        self.client.on_connect = self._handle_connect
        self.client.on_disconnect = self._handle_disconnect
        self.client.on_subscribe = self._handle_subscribe
        self.client.on_publish = self._handle_publish
        self.client.on_message = self._handle_message

    @property
    def address(self) -> str:
        s = self.settings
        return f"{s.host}:{s.port}" + (" (TLS)" if s.tls else "")

    def open(self) -> None:
        """Connect, subscribe, wait for the SUBACK; :class:`BrokerUnavailable` otherwise."""
        s = self.settings
        try:
            if s.tls is not None:
                self.client.tls_set_context(tls_context(s))
            self.client.connect(s.host, s.port, keepalive=int(s.keepalive), clean_start=True)
        except (OSError, ValueError) as exc:  # refused, unreachable, DNS, TLS
            raise BrokerUnavailable(f"cannot connect to {self.address}: {exc}") from exc
        self.client.loop_start()
        try:
            if not self._connack.wait(CONNECT_TIMEOUT):
                raise BrokerUnavailable(f"no CONNACK from {self.address} within {CONNECT_TIMEOUT:.0f} s")
            reason = self._connack_reason
            if reason is None or reason.is_failure:
                raise BrokerUnavailable(f"{self.address} refused the connection: {reason}")
            rc, _mid = self.client.subscribe([(replies_filter(self._client_id), 1), (REFUSALS_FILTER, 1)])
            if rc != mqtt.MQTT_ERR_SUCCESS:
                raise BrokerUnavailable(f"cannot subscribe on {self.address}: {mqtt.error_string(rc)}")
            if not self._suback.wait(CONNECT_TIMEOUT):
                raise BrokerUnavailable(f"no SUBACK from {self.address} within {CONNECT_TIMEOUT:.0f} s")
            refused = [str(code) for code in self._suback_codes if code.is_failure]
            if refused:
                # Requests could go out, but no reply would ever come back.
                raise BrokerUnavailable(f"{self.address} refused the replies' subscriptions: {refused}")
            if self.ended.is_set():
                raise BrokerUnavailable(f"{self.address}: {self.end_reason}")
        except BrokerUnavailable:
            self.close()
            raise

    def close(self, reason: str = "closed") -> None:
        self._closing = True
        if not self.ended.is_set():
            self.end_reason = reason
        self.client.disconnect()
        self.client.loop_stop()
        self.ended.set()

    # -- paho's thread ----------------------------------------------------------------

    def _handle_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self._connack_reason = reason
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

    def _handle_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, props: Properties | None
    ) -> None:
        self._on_published(self.generation, mid, reason)

    def _handle_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # Whatever a device sends must not end paho's thread (an exception in a callback
        # does): the client's handler counts what it cannot use, this is the last guard.
        try:
            correlation = getattr(msg.properties, "CorrelationData", None)
            self._on_message(
                Incoming(
                    msg.topic, bytes(msg.payload), bytes(correlation) if correlation is not None else None
                )
            )
        except Exception:
            log.exception("command reply on %r not handled", msg.topic)


class CommandLink:
    """Keeps one :class:`_Connection` up: a thread opens it, waits for it to end, calls
    ``on_lost`` and opens the next, with full-jitter exponential backoff between attempts
    (a random wait in ``[0, min(mqtt.reconnect_max, 0.5 s · 2ⁿ)]``)."""

    def __init__(
        self,
        settings: MQTTSettings,
        client_id: str,
        *,
        on_message: Callable[[Incoming], None],
        on_published: Callable[[int, int, ReasonCode], None],
        on_connected: Callable[[bool], None],
        on_lost: Callable[[str], None],
    ) -> None:
        if any(c in client_id for c in "+#/\x00"):
            # It becomes a level of the response topics and of our subscription's filter.
            raise ValueError(f"client id {client_id!r} cannot be a topic level")
        self.settings = settings
        self.client_id = client_id
        self._on_message = on_message
        self._on_published = on_published
        self._on_connected = on_connected
        self._on_lost = on_lost
        self._lock = threading.Lock()
        self._connection: _Connection | None = None
        self._generations = itertools.count(1)
        self._stop = threading.Event()
        self._failures = 0
        self._thread = threading.Thread(target=self._run, name="ingest-commands-mqtt", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            connection = self._connection
        if connection is not None:
            connection.close("stopping")
        self._thread.join(timeout=15)

    def connected(self) -> bool:
        with self._lock:
            connection = self._connection
        return connection is not None and not connection.ended.is_set()

    def publish(self, topic: str, payload: bytes, properties: Properties) -> tuple[int, int, threading.Event]:
        """QoS 1 on the current connection: ``(generation, mid, ended)``, ``ended`` being the
        connection's event (set when it is gone).  :class:`CommandUnavailable` without one."""
        with self._lock:
            connection = self._connection
        if connection is None or connection.ended.is_set():
            raise CommandUnavailable(f"not connected to the broker {_address(self.settings)}")
        info = connection.client.publish(topic, payload, qos=1, properties=properties)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise CommandUnavailable(f"cannot publish to {connection.address}: {mqtt.error_string(info.rc)}")
        return connection.generation, info.mid, connection.ended

    # -- the thread -------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            connection = self._connect()
            if connection is None:
                return
            with self._lock:
                self._connection = connection
            if self._stop.is_set():  # stop() may have looked before the connection was set
                connection.close("stopping")
            self._on_connected(True)
            connection.ended.wait()
            with self._lock:
                self._connection = None
            self._on_connected(False)
            self._on_lost(connection.end_reason)
            if not self._stop.is_set():
                log.warning(
                    "commands: broker %s: %s; reconnecting", connection.address, connection.end_reason
                )
                connection.close()

    def _connect(self) -> _Connection | None:
        self._failures = 0
        retrying = Retrying(
            retry=retry_if_exception_type(BrokerUnavailable),
            wait=wait_random_exponential(multiplier=0.5, max=self.settings.reconnect_max),
            stop=lambda _state: self._stop.is_set(),
            sleep=self._pause,
            before_sleep=self._failed,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    if self._stop.is_set():
                        return None
                    connection = _Connection(
                        self.settings,
                        self.client_id,
                        next(self._generations),
                        on_message=self._on_message,
                        on_published=self._on_published,
                    )
                    connection.open()
        except BrokerUnavailable:
            return None  # stopped while retrying
        log.info("commands: connection up to %s as %s", connection.address, self.client_id)
        return connection

    def _pause(self, seconds: float) -> None:
        self._stop.wait(seconds)  # stop() cuts the backoff short

    def _failed(self, state: RetryCallState) -> None:
        self._failures += 1
        exc = state.outcome.exception() if state.outcome is not None else None
        if self._failures == 1:
            log.warning("commands: %s; retrying with backoff (up to %g s)", exc, self.settings.reconnect_max)
        else:
            log.debug("commands: attempt %d: %s", self._failures, exc)


def _address(settings: MQTTSettings) -> str:
    return f"{settings.host}:{settings.port}" + (" (TLS)" if settings.tls else "")
