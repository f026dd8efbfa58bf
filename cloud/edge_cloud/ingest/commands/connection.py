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

Each connection is a fresh paho client (:class:`~edge_cloud.ingest.mqtt_link.Connection`),
reconnected with full-jitter backoff by :class:`~edge_cloud.ingest.mqtt_link.Link`, as the
consumer's is.  Not paho's automatic reconnect: paho re-sends after a reconnect the QoS 1
publishes it still holds, and a request whose caller was told 503 when the connection
dropped must not be executed by the device afterwards.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from edge_cloud.ingest.errors import CommandUnavailable
from edge_cloud.ingest.mqtt_link import Connection, Link, broker_address
from edge_cloud.ingest.settings import MQTTSettings

log = logging.getLogger(__name__)

CLIENT_ID_SUFFIX = "-commands"


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


class _Connection(Connection):
    """One connection: Clean Start 1, subscribed to the replies and the refusals (without
    them requests could go out, but no reply would ever come back); its PUBACKs are
    reported with its ``generation``."""

    def __init__(
        self,
        settings: MQTTSettings,
        client_id: str,
        generation: int,
        *,
        on_message: Callable[[Incoming], None],
        on_published: Callable[[int, int, ReasonCode], None],
    ) -> None:
        super().__init__(
            settings,
            client_id,
            subscriptions=[
                (replies_filter(client_id), SubscribeOptions(qos=1)),
                (REFUSALS_FILTER, SubscribeOptions(qos=1)),
            ],
            clean_start=True,
        )
        self.generation = generation
        self._on_message = on_message
        self._on_published = on_published
        self.client.on_publish = self._handle_publish
        self.client.on_message = self._handle_message

    # -- paho's thread ----------------------------------------------------------------

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


class CommandLink(Link[_Connection]):
    """Keeps one :class:`_Connection` up: a thread opens it, waits for it to end, calls
    ``on_lost`` and opens the next, with full-jitter exponential backoff between attempts."""

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
        super().__init__(
            settings, client_id, thread_name="ingest-commands-mqtt", log=log, log_prefix="commands: "
        )
        self._on_message = on_message
        self._on_published = on_published
        self._on_connected = on_connected
        self._on_lost = on_lost
        self._generations = itertools.count(1)

    def publish(self, topic: str, payload: bytes, properties: Properties) -> tuple[int, int, threading.Event]:
        """QoS 1 on the current connection: ``(generation, mid, ended)``, ``ended`` being the
        connection's event (set when it is gone).  :class:`CommandUnavailable` without one."""
        connection = self.current
        if connection is None:
            raise CommandUnavailable(f"not connected to the broker {broker_address(self.settings)}")
        info = connection.client.publish(topic, payload, qos=1, properties=properties)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise CommandUnavailable(f"cannot publish to {connection.address}: {mqtt.error_string(info.rc)}")
        return connection.generation, info.mid, connection.ended

    def _open(self) -> _Connection:
        connection = _Connection(
            self.settings,
            self.client_id,
            next(self._generations),
            on_message=self._on_message,
            on_published=self._on_published,
        )
        connection.open()
        return connection

    def _up(self, connection: _Connection, failures: int, seconds: float) -> None:
        log.info("commands: connection up to %s as %s", connection.address, self.client_id)
        self._on_connected(True)

    def _down(self, connection: _Connection) -> None:
        self._on_connected(False)
        self._on_lost(connection.end_reason)
