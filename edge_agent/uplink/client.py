"""One MQTT v5 session with the broker: paho-mqtt 2.x driven by the asyncio event loop.

A :class:`Connection` is one network session: a fresh paho client whose socket the event
loop watches (``add_reader``/``add_writer``, as aiomqtt 2.x does), with keep-alive from a
small task calling ``loop_misc`` every second.  The only other thread is the executor
running paho's blocking ``connect()`` (DNS, TCP, TLS handshake); callbacks paho makes from
there are moved onto the loop with ``call_soon_threadsafe``.

Every publish and subscribe parks a future keyed by its message id, resolved by paho's
callback; when the connection drops, every pending future fails with
:class:`~edge_agent.uplink.errors.ConnectionLost`, so none is ever left behind.

paho's automatic reconnect is off and a Connection is never reused: reconnecting (with
backoff) and resending are the forwarder's job, because the outbox, not paho's in-memory
queue, is the source of truth for what still has to go out.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge_agent.uplink.errors import (
    BrokerUnreachable,
    ConnectFailed,
    ConnectionLost,
    ConnectTimeout,
    PublishRejected,
    SubscribeRejected,
    TLSFailure,
    UplinkError,
    refused,
)
from edge_agent.uplink.params import CONNECT_TIMEOUT, ConnectParams, paho_client

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Message:
    """An incoming application message."""

    topic: str
    payload: bytes
    user_properties: dict[str, str]
    response_topic: str | None = None
    """MQTT v5 Response Topic: where a request wants its reply."""
    correlation_data: bytes | None = None


MessageHandler = Callable[[Message], None]


def user_properties(properties: Properties | None) -> dict[str, str]:
    pairs = getattr(properties, "UserProperty", None) or []
    return {str(k): str(v) for k, v in pairs}


class Connection:
    """One MQTT v5 session.  Open with :meth:`open`; ``closed`` resolves when it ends."""

    def __init__(self, params: ConnectParams, client: mqtt.Client, on_message: MessageHandler | None) -> None:
        self.params = params
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._paho = client
        self._on_message_handler = on_message
        self._connack: asyncio.Future[None] = self._loop.create_future()
        self.closed: asyncio.Future[ConnectionLost] = self._loop.create_future()
        """Resolves (never fails) with the reason the session ended."""
        self._publishes: dict[int, asyncio.Future[None]] = {}
        self._subscribes: dict[int, asyncio.Future[list[ReasonCode]]] = {}
        self._fd: int | None = None
        self._misc_task: asyncio.Task[None] | None = None
        self._last_paho_error: str | None = None
        self._abort_reason: str | None = None
        self.session_present = False
        self.receive_maximum: int | None = None
        """The broker's limit on our unacknowledged QoS 1 publishes (CONNACK property)."""
        self.maximum_packet_size: int | None = None
        for name in (
            "on_connect",
            "on_disconnect",
            "on_publish",
            "on_subscribe",
            "on_message",
            "on_log",
            "on_socket_open",
            "on_socket_close",
            "on_socket_register_write",
            "on_socket_unregister_write",
        ):
            setattr(client, name, getattr(self, "_" + name))

    # -- opening ------------------------------------------------------------------------

    @classmethod
    async def open(cls, params: ConnectParams, *, on_message: MessageHandler | None = None) -> Connection:
        """Connect and wait for an accepted CONNACK, or raise a :class:`ConnectFailed`."""
        conn = cls(params, paho_client(params), on_message)
        await conn._connect()
        return conn

    async def _connect(self) -> None:
        p = self.params
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = p.session_expiry
        # clean_start=False: resume the session, so acks the ingest sent while we were
        # away are delivered, and the acks subscription survives.
        attempt = self._loop.run_in_executor(
            None,
            partial(self._paho.connect, p.host, p.port, p.keepalive, clean_start=False, properties=props),
        )
        try:
            rc = await attempt
        except asyncio.CancelledError:
            # The executor keeps going; close whatever socket it ends up with.
            self._connack.cancel()
            attempt.add_done_callback(lambda _: self.abort("connection attempt cancelled"))
            raise
        except (ssl.SSLError, ssl.CertificateError) as exc:
            raise TLSFailure(f"TLS handshake with {p.address} failed: {_ssl_reason(exc)}") from exc
        except OSError as exc:
            raise BrokerUnreachable(
                f"cannot reach {p.address}: {exc.strerror or exc or type(exc).__name__}", errno=exc.errno
            ) from exc
        except ValueError as exc:  # paho: invalid host or port
            raise BrokerUnreachable(f"cannot connect to {p.address}: {exc}") from exc
        if rc != mqtt.MQTT_ERR_SUCCESS:
            self.abort("CONNECT not sent")
            raise BrokerUnreachable(f"cannot connect to {p.address}: {mqtt.error_string(rc)}")
        try:
            async with asyncio.timeout(p.connect_timeout):
                await asyncio.shield(self._connack)
        except TimeoutError:
            self._connack.cancel()
            self.abort("no CONNACK")
            raise ConnectTimeout(f"no CONNACK from {p.address} within {p.connect_timeout:g} s") from None
        except asyncio.CancelledError:
            self._connack.cancel()
            self.abort("connection attempt cancelled")
            raise

    # -- use ----------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._connack.done() and not self._connack.cancelled() and not self.closed.done()

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> asyncio.Future[None]:
        """Hand a message to paho; the future resolves on PUBACK (QoS 1) or fails with
        :class:`PublishRejected` or :class:`ConnectionLost`."""
        if self.closed.done():
            raise ConnectionLost(self.closed.result().reason)
        info = self._paho.publish(topic, payload, qos, retain, properties)
        if info.rc == mqtt.MQTT_ERR_NO_CONN:
            raise ConnectionLost("not connected")
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            # MQTT_ERR_QUEUE_SIZE also means paho found the message id still in use.
            raise UplinkError(f"paho refused the publish: {mqtt.error_string(info.rc)}")
        fut: asyncio.Future[None] = self._loop.create_future()
        if qos == 0:
            fut.set_result(None)
        else:
            self._publishes[info.mid] = fut
        return fut

    async def subscribe(self, topic: str, qos: int = 1, *, timeout: float = CONNECT_TIMEOUT) -> None:
        if self.closed.done():
            raise ConnectionLost(self.closed.result().reason)
        rc, mid = self._paho.subscribe(topic, qos)
        if rc != mqtt.MQTT_ERR_SUCCESS or mid is None:
            raise ConnectionLost(f"cannot subscribe: {mqtt.error_string(rc)}")
        fut: asyncio.Future[list[ReasonCode]] = self._loop.create_future()
        self._subscribes[mid] = fut
        try:
            async with asyncio.timeout(timeout):
                codes = await fut
        except TimeoutError:
            raise ConnectTimeout(f"no SUBACK for {topic} within {timeout:g} s") from None
        finally:
            self._subscribes.pop(mid, None)
        code = codes[0]
        if code.is_failure:
            raise SubscribeRejected(topic, code.value, str(code))

    async def close(self, timeout: float = 2.0) -> None:
        """Send DISCONNECT (normal: the broker discards our will) and wait for the socket to close."""
        if self.closed.done():
            return
        if self._paho.disconnect() != mqtt.MQTT_ERR_SUCCESS:
            self.abort("disconnect failed")
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self.closed)
        except TimeoutError:
            self.abort("DISCONNECT not written in time")
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.shield(self.closed)
            except TimeoutError:
                self._closed(ConnectionLost("DISCONNECT not written in time"))

    def abort(self, reason: str) -> None:
        """Drop the connection now (no DISCONNECT: the broker publishes our will)."""
        if self.closed.done():
            return
        self._abort_reason = reason
        sock = self._paho.socket()
        if sock is None:
            if self._fd is None:
                self._closed(ConnectionLost(reason))
            return
        try:
            # Shutting the socket down makes it readable at EOF: paho then takes its
            # normal connection-lost path and calls on_disconnect.
            if isinstance(sock, socket.socket):
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            self._paho.loop_read()
        if self._fd is None:  # not watched by the loop (yet): nobody would see the EOF
            self._paho.loop_read()
            self._closed(ConnectionLost(reason))

    # -- paho callbacks -----------------------------------------------------------------

    def _in_loop(self, fn: Callable[..., None], *args: Any) -> None:
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._in_loop(self._connected, flags.session_present, reason_code, properties)

    def _connected(
        self, session_present: bool, reason_code: ReasonCode, properties: Properties | None
    ) -> None:
        if self._connack.done():
            return
        if reason_code.is_failure:
            self._connack.set_exception(refused(reason_code.value, str(reason_code)))
            return
        self.session_present = session_present
        self.receive_maximum = getattr(properties, "ReceiveMaximum", None)
        self.maximum_packet_size = getattr(properties, "MaximumPacketSize", None)
        # paho cannot lower its own cap once connected; the forwarder keeps its window
        # within receive_maximum instead.
        self._connack.set_result(None)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if flags.is_disconnect_packet_from_server:
            reason = f"the broker disconnected us: {reason_code} (0x{reason_code.value:02X})"
        elif self._abort_reason is not None:
            reason = self._abort_reason
        elif self._last_paho_error:
            reason = self._last_paho_error
        elif reason_code.value == 0x8D:  # paho's code for a keep-alive timeout
            reason = "no answer from the broker within the keep-alive interval"
        elif reason_code.is_failure:
            reason = "the broker or the network closed the connection"
        else:
            reason = "disconnected"
        self._in_loop(self._closed, ConnectionLost(reason))

    def _closed(self, lost: ConnectionLost) -> None:
        if not self._connack.done():
            self._connack.set_exception(self._failure_before_connack(lost))
        for futures in (self._publishes, self._subscribes):
            for fut in futures.values():
                if not fut.done():
                    fut.set_exception(lost)
            futures.clear()
        if not self.closed.done():
            self.closed.set_result(lost)

    def _failure_before_connack(self, lost: ConnectionLost) -> ConnectFailed:
        detail = self._last_paho_error or lost.reason
        if self.params.tls is not None and self._last_paho_error and "SSL" in self._last_paho_error.upper():
            # TLS 1.3: the server checks our certificate after the handshake, and a
            # rejection arrives as an alert on the first read.
            return TLSFailure(f"TLS session with {self.params.address} failed: {detail}")
        return BrokerUnreachable(f"{self.params.address} closed the connection before CONNACK: {detail}")

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_code: ReasonCode, properties: Properties
    ) -> None:
        self._in_loop(self._puback, mid, reason_code)

    def _puback(self, mid: int, reason_code: ReasonCode) -> None:
        fut = self._publishes.pop(mid, None)
        if fut is None or fut.done():
            return
        if reason_code.is_failure:
            fut.set_exception(PublishRejected(reason_code.value, str(reason_code)))
        else:
            fut.set_result(None)

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        self._in_loop(self._suback, mid, reason_codes)

    def _suback(self, mid: int, reason_codes: list[ReasonCode]) -> None:
        fut = self._subscribes.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_result(reason_codes)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        props = msg.properties
        correlation = getattr(props, "CorrelationData", None)
        message = Message(
            msg.topic,
            bytes(msg.payload),
            user_properties(props),
            response_topic=getattr(props, "ResponseTopic", None),
            correlation_data=bytes(correlation) if correlation is not None else None,
        )
        self._in_loop(self._deliver, message)

    def _deliver(self, message: Message) -> None:
        if self._on_message_handler is None:
            return
        try:
            self._on_message_handler(message)
        except Exception:  # a handler bug must not break paho's read loop mid-packet
            log.exception("MQTT message handler failed on %s", message.topic)

    def _on_log(self, client: mqtt.Client, userdata: Any, level: int, buf: str) -> None:
        if level == mqtt.MQTT_LOG_ERR:
            if buf.startswith("Caught exception"):  # one of our callbacks failed: a bug
                log.error("paho: %s", buf)
                return
            self._last_paho_error = buf
        if log.isEnabledFor(logging.DEBUG):
            log.debug("paho: %s", buf)

    # -- the socket on the event loop ---------------------------------------------------

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._watch, sock)

    def _watch(self, sock: Any) -> None:
        if self.closed.done():
            return
        self._fd = sock.fileno()
        if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
            # Small packets (acks of acks, status) should not wait for Nagle.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._loop.add_reader(self._fd, self._readable)
        self._misc_task = self._loop.create_task(self._misc_loop(), name="mqtt-keepalive")

    def _on_socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._unwatch)

    def _unwatch(self) -> None:
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
            self._fd = None
        if self._misc_task is not None:
            self._misc_task.cancel()
            self._misc_task = None

    def _on_socket_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._want_write)

    def _want_write(self) -> None:
        if self._fd is not None:
            self._loop.add_writer(self._fd, self._writable)

    def _on_socket_unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._no_write)

    def _no_write(self) -> None:
        if self._fd is not None:
            self._loop.remove_writer(self._fd)

    def _readable(self) -> None:
        try:
            self._paho.loop_read()
            # Decrypted TLS bytes can wait inside the SSL object while the socket itself
            # is no longer readable: drain them, or they sit there until the next packet.
            sock = self._paho.socket()
            while isinstance(sock, ssl.SSLSocket) and sock.pending() > 0:
                self._paho.loop_read()
                sock = self._paho.socket()
        except (OSError, UplinkError, ValueError) as exc:
            self.abort(f"read failed: {exc}")

    def _writable(self) -> None:
        try:
            self._paho.loop_write()
        except (OSError, ValueError) as exc:
            self.abort(f"write failed: {exc}")

    async def _misc_loop(self) -> None:
        while self._paho.loop_misc() == mqtt.MQTT_ERR_SUCCESS:
            await asyncio.sleep(1.0)


def _ssl_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verify failed: {exc.verify_message}"
    reason = getattr(exc, "reason", None)
    return str(reason or exc)
