"""The MQTT uplink: forwards the outbox to the broker and deletes only what is acknowledged.

- :mod:`.forwarder` — :class:`Forwarder`: lanes, batches, the window, acks, resends;
- :mod:`.client`    — :class:`Connection`: one MQTT v5 session, paho-mqtt on the event loop;
- :mod:`.lanes`     — priority / live / backlog readers and the backlog's token bucket;
- :mod:`.acks`      — parsing the ingest's acknowledgements;
- :mod:`.backoff`, :mod:`.problems` — reconnect timing and once-per-series logging;
- :mod:`.stats`     — :class:`UplinkStats`, the counters the daemon reports;
- :mod:`.errors`    — the uplink's exception tree.

The wire contract is :mod:`edge_protocol.wire`, in prose in ``docs/PROTOCOL.md``.
"""

from edge_agent.uplink.client import Connection, ConnectParams, Message, Will
from edge_agent.uplink.errors import (
    BrokerRefused,
    BrokerUnreachable,
    ConnectFailed,
    ConnectionLost,
    ConnectTimeout,
    NotAuthorized,
    PublishRejected,
    PublishTimeout,
    SubscribeRejected,
    TLSFailure,
    UplinkError,
)
from edge_agent.uplink.forwarder import Forwarder
from edge_agent.uplink.outbox_api import OutboxAPI
from edge_agent.uplink.stats import UplinkStats

__all__ = [
    "BrokerRefused",
    "BrokerUnreachable",
    "ConnectFailed",
    "ConnectParams",
    "ConnectTimeout",
    "Connection",
    "ConnectionLost",
    "Forwarder",
    "Message",
    "NotAuthorized",
    "OutboxAPI",
    "PublishRejected",
    "PublishTimeout",
    "SubscribeRejected",
    "TLSFailure",
    "UplinkError",
    "UplinkStats",
    "Will",
]
