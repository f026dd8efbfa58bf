"""Errors of the MQTT uplink.

::

    UplinkError
     ├── ConnectFailed          no session with the broker; the forwarder retries with backoff
     │    ├── BrokerUnreachable     TCP failed: refused, no route, DNS, timeout, closed before CONNACK
     │    │                         (``errno`` kept when there is one)
     │    ├── TLSFailure            handshake failed: unknown CA, expired or rejected certificate,
     │    │                         host name mismatch, unreadable CA/certificate/key file
     │    ├── BrokerRefused         CONNACK with a reason code >= 0x80 (``reason_code``, ``reason``)
     │    │    └── NotAuthorized        0x86 bad user name or password, 0x87 not authorised,
     │    │                             0x8A banned, 0x8C bad authentication method
     │    ├── ConnectTimeout        no CONNACK within the connect timeout
     │    └── SubscribeRejected     SUBACK refused the acks subscription (end-to-end mode cannot work)
     ├── ConnectionLost         an established connection dropped (``reason``); outstanding
     │                          publishes fail with it and are sent again after reconnecting
     ├── PublishRejected        PUBACK with a reason code >= 0x80, e.g. 0x87 not authorised,
     │                          0x97 quota exceeded: not a success, the events stay
     └── PublishTimeout         no PUBACK within ``ack_timeout``: the connection is presumed dead

paho-mqtt's own error codes and the ``ssl``/``socket`` exceptions are converted here, at the
boundary (:mod:`edge_agent.uplink.client`), with the original chained (``raise … from exc``).
"""

from __future__ import annotations

from edge_agent.errors import EdgeAgentError

NOT_AUTHORISED_CODES = frozenset({0x86, 0x87, 0x8A, 0x8C})


class UplinkError(EdgeAgentError):
    """Base class of the uplink's errors."""


class ConnectFailed(UplinkError):
    """A connection attempt did not end in an accepted CONNACK."""


class BrokerUnreachable(ConnectFailed):
    def __init__(self, message: str, *, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class TLSFailure(ConnectFailed):
    """The TLS handshake failed or the TLS files could not be loaded."""


class BrokerRefused(ConnectFailed):
    """The broker answered CONNECT with a failure reason code."""

    def __init__(self, reason_code: int, reason: str) -> None:
        super().__init__(f"broker refused the connection: {reason} (CONNACK 0x{reason_code:02X})")
        self.reason_code = reason_code
        self.reason = reason


class NotAuthorized(BrokerRefused):
    """Credentials or client certificate refused: fix them on the device or on the broker."""

    def __init__(self, reason_code: int, reason: str) -> None:
        super().__init__(reason_code, reason)
        self.args = (f"{self.args[0]}: check mqtt.username/mqtt.password or the client certificate",)


class ConnectTimeout(ConnectFailed):
    pass


class SubscribeRejected(ConnectFailed):
    def __init__(self, topic: str, reason_code: int, reason: str) -> None:
        super().__init__(f"broker refused the subscription to {topic}: {reason} (SUBACK 0x{reason_code:02X})")
        self.topic = topic
        self.reason_code = reason_code
        self.reason = reason


class ConnectionLost(UplinkError):
    """The connection dropped; ``reason`` says why when the broker or the socket told us."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"connection lost: {reason}")
        self.reason = reason


class PublishRejected(UplinkError):
    def __init__(self, reason_code: int, reason: str) -> None:
        super().__init__(f"broker rejected the publish: {reason} (PUBACK 0x{reason_code:02X})")
        self.reason_code = reason_code
        self.reason = reason


class PublishTimeout(UplinkError):
    pass


def refused(reason_code: int, reason: str) -> BrokerRefused:
    """The most specific error for a failing CONNACK."""
    if reason_code in NOT_AUTHORISED_CODES:
        return NotAuthorized(reason_code, reason)
    return BrokerRefused(reason_code, reason)
