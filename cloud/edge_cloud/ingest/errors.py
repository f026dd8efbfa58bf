"""Errors of the ingest service.

::

    CloudError (edge_cloud.common.errors)
     └── IngestError
          ├── StoreError              the database did not take a transaction
          │    ├── StoreUnavailable   transient: connection lost, deadlock, serialization
          │    │                      failure, database locked.  Retried with jitter; the
          │    │                      messages stay unacknowledged meanwhile.
          │    └── StoreRejected      the database refused the data itself (a value it
          │                           cannot hold).  Never retried as is: the consumer
          │                           writes the messages one by one and quarantines the
          │                           one that still fails.
          ├── BrokerError             the MQTT side
          │    └── BrokerUnavailable  cannot connect, CONNACK refused, TLS failure, the
          │                           connection dropped.  Retried with jitter.
          ├── DeviceCheckUnavailable  the auth service's API did not answer which devices
          │                           are enabled (consumer.devices = "known")
          ├── CommandError            a remote command got no usable reply (commands/; the
          │    │                      HTTP status of POST /v1/devices/{id}/commands/{name})
          │    ├── CommandUnavailable  503: the command client is not connected (or lost the
          │    │                      connection while the request was pending)
          │    ├── CommandTooLarge    413: the request is over the protocol's 64 KiB
          │    ├── CommandBusy        429: this process has as many requests pending as it takes
          │    ├── CommandTimeout     504: no reply within the timeout (device offline, slow,
          │    │                      or no session of it subscribed to its commands)
          │    └── CommandBadReply    502: the device's reply is not the protocol's shape
          │         └── CommandRefused 502: the broker refused the request (PUBACK reason
          │                           code, e.g. 0x87 not authorised)
          ├── ImportRefused           a file given to POST /v1/import cannot be imported as
          │                           a whole (``status``: the HTTP status to answer)
          └── LoginFailed             the dashboard's login: the auth service refused the
                                      password (``status`` 401, or 429 while it limits the
                                      account), or did not answer (503)

``ConfigError`` (exit 78) comes from ``edge_cloud.common.errors``.  A message or an event
the ingest refuses is not an exception once it is past the decoder: it is a
``Refusal`` (``store.model``), counted, quarantined and acknowledged.
"""

from __future__ import annotations

from edge_cloud.common.errors import CloudError


class IngestError(CloudError):
    """Base class of the ingest service's errors."""


class StoreError(IngestError):
    """The database did not take a transaction."""


class StoreUnavailable(StoreError):
    """A transient database failure: try again later."""


class StoreRejected(StoreError):
    """The database refused the data of a transaction (not transient)."""


class BrokerError(IngestError):
    """Something on the MQTT side."""


class BrokerUnavailable(BrokerError):
    """No usable connection to the broker (retried with backoff)."""


class DeviceCheckUnavailable(IngestError):
    """The auth service could not say whether a device is enabled."""


class CommandError(IngestError):
    """A remote command that got no usable reply; ``status`` is the HTTP status to answer."""

    status = 500


class CommandUnavailable(CommandError):
    """No connection to the broker for commands (none yet, or it dropped while waiting)."""

    status = 503


class CommandTooLarge(CommandError):
    """The request is bigger than the protocol allows."""

    status = 413


class CommandBusy(CommandError):
    """Too many requests pending in this process; try again shortly."""

    status = 429


class CommandTimeout(CommandError):
    """The device did not answer within the timeout."""

    status = 504


class CommandBadReply(CommandError):
    """The device answered something that is not a reply (or the broker refused the request)."""

    status = 502


class CommandRefused(CommandBadReply):
    """The broker refused to take the request (PUBACK with a failure reason code)."""


class ImportRefused(IngestError):
    """A file for ``POST /v1/import`` that cannot be imported at all."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


class LoginFailed(IngestError):
    """The dashboard's login: the auth service refused the operator's password, or did not answer."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status
        """The HTTP status the login page answers with: 401 refused, 429 limited, 503 no answer."""
