"""The ingest's MQTT v5 connections, and the thread that keeps one up: what the consumer
and the command client share.

:class:`Connection` is one connection: a fresh paho client, never reused.  paho runs its
own network thread (``loop_start``) with its automatic reconnect off
(``reconnect_on_failure=False``); :meth:`Connection.open` connects, waits for an accepted
CONNACK, subscribes and waits for the SUBACK, or raises :class:`BrokerUnavailable`.  A
subclass says what it subscribes to and how it connects (Clean Start, CONNECT properties,
manual acks), adds its own paho callbacks (messages, PUBACKs) and may check the CONNACK
(:meth:`Connection._accepted`).

:class:`Link` keeps one connection up: a thread opens one (:meth:`Link._open`, a new
:class:`Connection` each time), waits for it to end and opens the next, retrying with
tenacity's full-jitter exponential backoff (a random wait in ``[0, min(mqtt.reconnect_max,
0.5 s · 2ⁿ)]``), so a fleet of ingest processes that lost their broker together do not come
back together.  One WARNING per series of failed attempts.

Why a fresh client per connection rather than paho's reconnect: nothing of the old
connection comes with it.  A PUBACK for a session that has ended goes nowhere, instead of
acknowledging, under a reused packet id, a message of the next connection (the consumer);
and paho does not re-send, after a reconnect, QoS 1 publishes whose callers were already
told they failed (the command client).  The TLS files are read again at each attempt, so
a renewed certificate is picked up on the next reconnect.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_random_exponential

from edge_cloud.ingest.errors import BrokerUnavailable
from edge_cloud.ingest.settings import MQTTSettings

CONNECT_TIMEOUT = 10.0
"""Seconds for TCP, TLS and CONNACK together; and for the SUBACK."""
INFLIGHT = 20
"""Our own unacknowledged QoS 1 publishes paho keeps on the wire at once; the rest wait in
paho's queue.  20 is Mosquitto's default Receive Maximum (``max_inflight_messages``): paho
does not keep to the broker's by itself, and Mosquitto disconnects a client that goes over
it."""


def broker_address(settings: MQTTSettings) -> str:
    return f"{settings.host}:{settings.port}" + (" (TLS)" if settings.tls else "")


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


class Connection:
    """One connection.  :meth:`open` connects and subscribes or raises
    :class:`BrokerUnavailable`; ``ended`` is set when the connection is gone."""

    def __init__(
        self,
        settings: MQTTSettings,
        client_id: str,
        *,
        subscriptions: Sequence[tuple[str, SubscribeOptions]],
        clean_start: bool,
        properties: Properties | None = None,
        manual_ack: bool = False,
        max_inflight: int = INFLIGHT,
    ) -> None:
        self.settings = settings
        self.client_id = client_id
        self.max_inflight = max_inflight
        self.ended = threading.Event()
        self.end_reason = ""
        self.session_present = False
        self.broker_receive_maximum: int | None = None
        self._subscriptions = list(subscriptions)
        self._clean_start = clean_start
        self._properties = properties
        self._connack = threading.Event()
        self._connack_reason: ReasonCode | None = None
        self._suback = threading.Event()
        self._suback_codes: list[ReasonCode] = []
        self._closing = False
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=manual_ack,
            reconnect_on_failure=False,
        )
        self.client.max_inflight_messages_set(max_inflight)
        self.client.max_queued_messages_set(0)
        if settings.username is not None:
            self.client.username_pw_set(settings.username, settings.password)
        self.client.on_connect = self._handle_connect
        self.client.on_disconnect = self._handle_disconnect
        self.client.on_subscribe = self._handle_subscribe

    @property
    def address(self) -> str:
        return broker_address(self.settings)

    def open(self) -> None:
        """Connect, wait for an accepted CONNACK, subscribe, wait for the SUBACK."""
        s = self.settings
        if s.tls is not None:
            self.client.tls_set_context(tls_context(s))
        try:
            self.client.connect(
                s.host,
                s.port,
                keepalive=int(s.keepalive),
                clean_start=self._clean_start,
                properties=self._properties,
            )
        except (OSError, ValueError) as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError is an OSError)
            raise BrokerUnavailable(f"cannot connect to {self.address}: {exc}") from exc
        self.client.loop_start()
        try:
            if not self._connack.wait(CONNECT_TIMEOUT):
                raise BrokerUnavailable(f"no CONNACK from {self.address} within {CONNECT_TIMEOUT:.0f} s")
            reason = self._connack_reason
            if reason is None or reason.is_failure:
                raise BrokerUnavailable(f"{self.address} refused the connection: {reason}")
            self._accepted()
            self._subscribe()
            if self.ended.is_set():
                raise BrokerUnavailable(f"{self.address}: {self.end_reason}")
        except BrokerUnavailable:
            self.close()
            raise

    def _accepted(self) -> None:
        """After an accepted CONNACK, before SUBSCRIBE: :class:`BrokerUnavailable` to give up."""

    def _subscribe(self) -> None:
        rc, _mid = self.client.subscribe(self._subscriptions)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise BrokerUnavailable(f"cannot subscribe on {self.address}: {mqtt.error_string(rc)}")
        if not self._suback.wait(CONNECT_TIMEOUT):
            raise BrokerUnavailable(f"no SUBACK from {self.address} within {CONNECT_TIMEOUT:.0f} s")
        refused = [str(code) for code in self._suback_codes if code.is_failure]
        if refused:
            # Without its subscriptions a client would sit connected and receive nothing.
            raise BrokerUnavailable(f"{self.address} refused the subscriptions: {', '.join(refused)}")

    def close(self, reason: str = "closed") -> None:
        """DISCONNECT (a session with an expiry stays with the broker) and stop the thread."""
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


C = TypeVar("C", bound=Connection)


class Link(Generic[C]):
    """Keeps one connection up (see the module doc).  A subclass opens a connection
    (:meth:`_open`) and hears of it coming up and going (:meth:`_up`, :meth:`_down`)."""

    def __init__(
        self,
        settings: MQTTSettings,
        client_id: str,
        *,
        thread_name: str,
        log: logging.Logger,
        log_prefix: str = "",
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.client_id = client_id
        self._log = log
        self._prefix = log_prefix
        self._monotonic = monotonic
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._connection: C | None = None
        self._failures = 0
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Close the current connection and stop reconnecting."""
        self._stop.set()
        with self._lock:
            connection = self._connection
        if connection is not None:
            connection.close("stopping")
        self._thread.join(timeout=15)

    @property
    def current(self) -> C | None:
        """The connected connection, or None."""
        with self._lock:
            connection = self._connection
        return connection if connection is not None and not connection.ended.is_set() else None

    def connected(self) -> bool:
        return self.current is not None

    # -- what a subclass says ---------------------------------------------------------

    def _open(self) -> C:
        """A new connection, opened; :class:`BrokerUnavailable` otherwise."""
        raise NotImplementedError

    def _up(self, connection: C, failures: int, seconds: float) -> None:
        """Connected after ``failures`` failed attempts over ``seconds``."""

    def _down(self, connection: C) -> None:
        """``connection`` has ended (``end_reason``), or the link is stopping."""

    # -- the thread -------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            started = self._monotonic()
            connection = self._connect()
            if connection is None:
                return
            with self._lock:
                self._connection = connection
            if self._stop.is_set():  # stop() may have looked before the connection was set
                connection.close("stopping")
            self._up(connection, self._failures, self._monotonic() - started)
            connection.ended.wait()
            with self._lock:
                self._connection = None
            self._down(connection)
            if not self._stop.is_set():
                self._log.warning(
                    "%sbroker %s: %s; reconnecting", self._prefix, connection.address, connection.end_reason
                )
                connection.close()

    def _connect(self) -> C | None:
        """An open connection, retried with jittered backoff until one opens or stop()."""
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
                    connection = self._open()
        except BrokerUnavailable:
            return None  # stopped while retrying
        return connection

    def _pause(self, seconds: float) -> None:
        self._stop.wait(seconds)  # stop() cuts the backoff short

    def _failed(self, state: RetryCallState) -> None:
        self._failures += 1
        exc = state.outcome.exception() if state.outcome is not None else None
        if self._failures == 1:
            self._log.warning(
                "%s%s; retrying with backoff (up to %g s)", self._prefix, exc, self.settings.reconnect_max
            )
        else:
            self._log.debug("%sattempt %d: %s", self._prefix, self._failures, exc)
