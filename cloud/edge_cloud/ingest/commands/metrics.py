"""The command client's Prometheus metrics (in the registry ``/metrics`` serves).

The ``command`` label is the command's name for the protocol's commands and ``other``
for any other name: the name comes from the caller, and a label per made-up name would
grow the registry without bound.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

KNOWN_COMMANDS = frozenset({"ping", "run-test", "get-calibration"})


def command_label(name: str) -> str:
    return name if name in KNOWN_COMMANDS else "other"


class CommandMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        r = registry
        self.sent = Counter(
            "edge_ingest_commands_sent", "Command requests published, by command", ["command"], registry=r
        )
        self.replied = Counter(
            "edge_ingest_commands_replied",
            "Replies matched to a request, by command and outcome (ok, error: the device's "
            "ok:false, bad_reply: not the protocol's shape)",
            ["command", "outcome"],
            registry=r,
        )
        self.timed_out = Counter(
            "edge_ingest_commands_timed_out",
            "Requests without a reply in time, by command",
            ["command"],
            registry=r,
        )
        self.failed = Counter(
            "edge_ingest_commands_failed",
            "Requests that failed before a reply: unavailable (no connection, or it dropped), "
            "busy (too many pending), refused (by the broker)",
            ["command", "reason"],
            registry=r,
        )
        self.dropped = Counter(
            "edge_ingest_command_replies_dropped",
            "Messages on the replies' topics matched to no pending request of this process: "
            "unknown (late, or another process's), mismatch (topic and correlation disagree), "
            "no_correlation, topic (not a reply topic)",
            ["reason"],
            registry=r,
        )
        self.pending = Gauge("edge_ingest_commands_pending", "Requests waiting for their reply", registry=r)
        self.connected = Gauge(
            "edge_ingest_commands_connected", "1 while the command client is connected", registry=r
        )
