"""The MQTT uplink: forwards the outbox to the broker and deletes only what is acknowledged.

- :mod:`.forwarder`     — :class:`Forwarder`, the API: wires the parts below, connects,
  serves a session, reconnects until stopped, routes incoming messages;
- :mod:`.connecting`    — a connection with its subscriptions, retried with backoff;
- :mod:`.session`       — one connection from CONNACK to its end: birth, the pump and the
  ack timer, then a lost connection or a drained, clean stop;
- :mod:`.pump`          — one session's lanes; chooses, cuts and publishes batches;
- :mod:`.window`        — :class:`~.window.InFlight` batches, the seqs in them, the resend queue;
- :mod:`.confirmations` — PUBACK outcomes, the ingest's acks, the ack timer;
- :mod:`.deletions`     — confirmed seqs deleted from the outbox, coalesced;
- :mod:`.payload`       — a batch's topic, properties and payload bytes;
- :mod:`.command_channel` — remote commands' subscription and replies;
- :mod:`.stopping`      — the stop request every part reads;
- :mod:`.client`        — :class:`Connection`: one MQTT v5 session, paho-mqtt on the event loop;
- :mod:`.lanes`         — priority / live / backlog readers and the backlog's token bucket;
- :mod:`.acks`          — parsing the ingest's acknowledgements;
- :mod:`.backoff`, :mod:`.problems` — reconnect timing and once-per-series logging;
- :mod:`.status`        — the retained birth / will / offline payloads;
- :mod:`.outbox_api`    — what the uplink needs from the outbox, and what a failing one raises;
- :mod:`.stats`         — :class:`UplinkStats`, the counters the daemon reports;
- :mod:`.errors`        — the uplink's exception tree.

The wire contract is :mod:`edge_protocol.wire`, in prose in ``docs/PROTOCOL.md``.
"""

from edge_agent.uplink.client import Connection, Message
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
from edge_agent.uplink.params import ConnectParams, Will
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
