"""The uplink's side of remote commands (:mod:`edge_agent.remote`): the subscription to
``commands/+``, the router the requests are handed to, and the replies' PUBLISH.

Forwarding events matters more than commands: a broker refusing the subscription costs
the commands of that connection, not the connection.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.uplink.client import Connection, Message
from edge_agent.uplink.errors import SubscribeRejected

log = logging.getLogger("edge_agent.uplink")


class CommandRouter(Protocol):
    """Takes the messages of the device's commands topic (:mod:`edge_agent.remote`)."""

    topic_filter: str

    def matches(self, topic: str) -> bool: ...

    def receive(self, message: Message) -> None: ...


async def subscribe_commands(conn: Connection, topic: str) -> None:
    try:
        await conn.subscribe(topic, qos=1)
    except SubscribeRejected as exc:
        # Forwarding events matters more than commands: carry on without them.
        log.warning("MQTT: remote commands unavailable on this connection: %s", exc)


def send_reply(conn: Connection, topic: str, payload: bytes, correlation: bytes | None) -> None:
    """A command reply (QoS 1, not stored) on ``conn``; a failure is logged, never retried."""
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.ContentType = "application/json"
    if correlation is not None:
        props.CorrelationData = correlation
    conn.publish(topic, payload, properties=props).add_done_callback(_reply_published)


def _reply_published(fut: asyncio.Future[None]) -> None:
    exc = None if fut.cancelled() else fut.exception()
    if exc is not None:
        log.warning("MQTT: command reply not delivered: %s", exc)
