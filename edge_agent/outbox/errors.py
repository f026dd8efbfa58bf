"""Errors of the outbox.

::

    EdgeAgentError                      (edge_agent.errors)
     └── OutboxError                    anything the outbox cannot do; the sqlite3 error is chained
          ├── OutboxClosedError         used after close(), or a writer after stop()
          ├── OutboxLockedError         another process (a second daemon) holds the outbox file
          └── OutboxFullError           the disk is full and nothing is left to evict: the events
                                        handed to append() were NOT committed

A corrupt file is not an error at open: it is quarantined and a fresh outbox is started
(see :mod:`edge_agent.outbox.recovery`).
"""

from __future__ import annotations

from edge_agent.errors import EdgeAgentError


class OutboxError(EdgeAgentError):
    """The outbox could not do what was asked."""


class OutboxClosedError(OutboxError):
    """The outbox (or the writer) is closed."""


class OutboxLockedError(OutboxError):
    """Another process has the outbox open; two daemons must never share one seq counter."""


class OutboxFullError(OutboxError):
    """No room could be made on the disk: the events being appended were not committed."""
