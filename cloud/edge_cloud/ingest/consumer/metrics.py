"""The write path's Prometheus metrics, in a :class:`CollectorRegistry` the API serves.

Consumer lag is measured as **queue depth**: ``edge_ingest_pending_messages``, the
messages received from the broker and not yet committed and acknowledged (they are also
what the broker counts against ``mqtt.receive_maximum``), with
``edge_ingest_message_wait_seconds``, the time from receiving a message to its commit.
Receive time minus event time is not used: a device draining a week of backlog would
read as a week of lag while the ingest keeps up.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from edge_cloud.ingest.store.model import Outcome, RefusalReason

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class IngestMetrics:
    """Counters of what arrived, what was stored, what was refused and why."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.received_messages = Counter(
            "edge_ingest_received_messages", "Messages received from the broker", ["topic"], registry=r
        )
        self.received_events = Counter(
            "edge_ingest_received_events", "Events in the batches received (and imported)", registry=r
        )
        self.stored_events = Counter(
            "edge_ingest_stored_events", "Events new to the ledger, written to their tables", registry=r
        )
        self.duplicate_events = Counter(
            "edge_ingest_duplicate_events", "Events already stored: acknowledged again", registry=r
        )
        self.refused = Counter(
            "edge_ingest_refused",
            "Messages (and single events, reason invalid_event) refused, quarantined and acknowledged",
            ["reason"],
            registry=r,
        )
        self.commit_seconds = Histogram(
            "edge_ingest_batch_commit_seconds",
            "Time of one transaction, from its first statement to its commit",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_events = Histogram(
            "edge_ingest_batch_events",
            "Events per transaction",
            buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000, 50000),
            registry=r,
        )
        self.message_wait_seconds = Histogram(
            "edge_ingest_message_wait_seconds",
            "From receiving a message to the commit holding it",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.pending_messages = Gauge(
            "edge_ingest_pending_messages",
            "Consumer lag: messages received and not yet committed and acknowledged",
            registry=r,
        )
        self.acks_published = Counter(
            "edge_ingest_acks_published", "End-to-end acks published to devices/{id}/acks", registry=r
        )
        self.acks_dropped = Counter(
            "edge_ingest_acks_dropped",
            "Acks not published for want of a connection (the device sends again; acked then)",
            registry=r,
        )
        self.store_failures = Counter(
            "edge_ingest_store_failures",
            "Transactions that failed and were tried again",
            ["kind"],
            registry=r,
        )
        self.broker_connected = Gauge(
            "edge_ingest_broker_connected", "1 while connected to the broker", registry=r
        )
        self.broker_connects = Counter("edge_ingest_broker_connects", "Successful connections", registry=r)
        self.device_check_failures = Counter(
            "edge_ingest_device_check_failures",
            "Times the auth service could not say whether a device is enabled (let through)",
            registry=r,
        )

    def refusal(self, reason: RefusalReason) -> None:
        self.refused.labels(reason=reason).inc()

    def outcome(self, outcome: Outcome) -> None:
        self.stored_events.inc(outcome.stored)
        self.duplicate_events.inc(outcome.duplicates)
        for refusal in outcome.refused_events:
            self.refusal(refusal.reason)
