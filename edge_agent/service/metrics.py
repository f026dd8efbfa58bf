"""Prometheus metrics of the running daemon, on ``[metrics] listen`` (default 127.0.0.1:9108).

Most numbers already exist as counters in the parts (``SensorLoop.counters``, the
outbox's tallies, ``UplinkStats``, the clock watch, the health guards): a custom
collector reads them at scrape time through :func:`edge_agent.service.snapshot.daemon_snapshot`
rather than keeping a second copy.  The scrape happens on the HTTP server's thread, so the
snapshot is taken *on the event loop* (the only owner of that state); a loop that does not
answer within :data:`LOOP_ANSWER_S` yields ``edge_agent_event_loop_responsive 0`` instead.

What only exists as a stream is recorded here as it happens: publish latency (a hook in
the forwarder), events committed by kind and sensor-test results by status (the daemon's
``emit`` goes through :meth:`Metrics.counting`), health changes.

A dedicated :class:`CollectorRegistry` per daemon, never the global one, so that tests
can run several daemons in one process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import platform
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Protocol, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from edge_agent import __version__
from edge_agent.events import NewEvent
from edge_agent.sampling.health import HEALTH_STATES, Change
from edge_agent.settings import MetricsSettings

log = logging.getLogger(__name__)

LOOP_ANSWER_S = 2.0
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

Snapshot = Callable[[], dict[str, Any]]
T = TypeVar("T")


def on_loop(loop: asyncio.AbstractEventLoop, fn: Callable[[], T], timeout: float) -> T:
    """Run ``fn`` on ``loop`` from another thread and wait for its result."""
    done: concurrent.futures.Future[T] = concurrent.futures.Future()

    def call() -> None:
        try:
            done.set_result(fn())
        except BaseException as exc:  # handed to the waiting thread
            done.set_exception(exc)

    loop.call_soon_threadsafe(call)
    return done.result(timeout)


class _DaemonCollector(Collector):
    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        info = InfoMetricFamily("edge_agent_build", "Version of the running edge-agent")
        info.add_metric([], {"version": __version__, "python": platform.python_version()})
        yield info
        responsive = GaugeMetricFamily(
            "edge_agent_event_loop_responsive", "1 when the daemon's event loop answered this scrape"
        )
        try:
            snap = self._snapshot()
        except (concurrent.futures.TimeoutError, RuntimeError) as exc:
            # A TimeoutError's text is empty: name what happened instead.
            reason = str(exc) or f"no answer within {LOOP_ANSWER_S:g} s"
            log.warning("metrics: the event loop did not answer the scrape: %s", reason)
            responsive.add_metric([], 0)
            yield responsive
            return
        responsive.add_metric([], 1)
        yield responsive
        yield from _sensor_metrics(snap["sensors"])
        yield from _pipeline_metrics(snap)


def _one(kind: str, name: str, doc: str, value: float) -> Metric:
    family = GaugeMetricFamily(name, doc) if kind == "gauge" else CounterMetricFamily(name, doc)
    family.add_metric([], value)
    return family


PLAIN: tuple[tuple[str, str, str, str, str], ...] = (
    # (section of the snapshot, its key, gauge|counter, metric name, help)
    (
        "outbox",
        "pending_events",
        "gauge",
        "edge_agent_outbox_pending_events",
        "Events committed and not yet acknowledged",
    ),
    (
        "outbox",
        "pending_bytes",
        "gauge",
        "edge_agent_outbox_pending_bytes",
        "Bytes of the pending events (what max_bytes caps)",
    ),
    ("outbox", "max_bytes", "gauge", "edge_agent_outbox_max_bytes", "The outbox size cap"),
    (
        "outbox",
        "exported_events",
        "counter",
        "edge_agent_outbox_exported_events",
        "Events removed by buffer export --mark-exported: carried out in a file, not lost (file lifetime)",
    ),
    (
        "uplink",
        "published_events",
        "counter",
        "edge_agent_uplink_published_events",
        "Events published (resends included)",
    ),
    (
        "uplink",
        "acked_events",
        "counter",
        "edge_agent_uplink_acked_events",
        "Events acknowledged and deleted from the outbox",
    ),
    ("uplink", "resent_events", "counter", "edge_agent_uplink_resent_events", "Events published again"),
    ("uplink", "connects", "counter", "edge_agent_uplink_connects", "Successful MQTT connections"),
    (
        "uplink",
        "connect_failures",
        "counter",
        "edge_agent_uplink_connect_failures",
        "Failed MQTT connection attempts",
    ),
    (
        "uplink",
        "inflight_batches",
        "gauge",
        "edge_agent_uplink_inflight_batches",
        "Batches published and not yet acknowledged",
    ),
)
"""Snapshot numbers exported as they are."""


def _sensor_metrics(sensors: list[dict[str, Any]]) -> Iterator[Metric]:
    readings = CounterMetricFamily("edge_agent_sensor_readings", "Good readings taken", labels=["sensor"])
    errors = CounterMetricFamily(
        "edge_agent_sensor_errors",
        "Failed reads by kind (driver error class, timeout, busy, driver_bug)",
        labels=["sensor", "kind"],
    )
    skipped = CounterMetricFamily(
        "edge_agent_sensor_skipped", "Scheduled reads not attempted", labels=["sensor", "reason"]
    )
    health = GaugeMetricFamily(
        "edge_agent_sensor_health", "1 for the sensor's current health state", labels=["sensor", "state"]
    )
    opens = CounterMetricFamily(
        "edge_agent_sensor_breaker_opens", "Times the sensor's circuit breaker opened", labels=["sensor"]
    )
    age = GaugeMetricFamily(
        "edge_agent_sensor_last_reading_age_seconds", "Seconds since the last good reading", labels=["sensor"]
    )
    for s in sensors:
        name = s["name"]
        readings.add_metric([name], s["reads"])
        for kind, n in sorted(s["errors_by_kind"].items()):
            errors.add_metric([name, kind], n)
        skipped.add_metric([name, "busy"], s.get("skipped_busy", 0))
        skipped.add_metric([name, "breaker_open"], s.get("skipped_open", 0))
        for state in HEALTH_STATES:
            health.add_metric([name, state], 1 if s["health"] == state else 0)
        opens.add_metric([name], s.get("breaker_opened", 0))
        if s["last_reading_age_s"] is not None:
            age.add_metric([name], s["last_reading_age_s"])
    yield from (readings, errors, skipped, health, opens, age)


def _pipeline_metrics(snap: dict[str, Any]) -> Iterator[Metric]:
    for section, key, kind, name, doc in PLAIN:
        if section in snap:
            yield _one(kind, name, doc, snap[section][key])
    if (outbox := snap.get("outbox")) is not None:
        evicted = CounterMetricFamily(
            "edge_agent_outbox_evicted_events",
            "Events evicted unsent, by cap (file lifetime)",
            labels=["reason"],
        )
        for reason, n in sorted(outbox["evicted_events"].items()):
            evicted.add_metric([reason], n)
        yield evicted
        yield from _loss_metrics(outbox)
    if (commands := snap.get("commands")) is not None:
        outcomes = CounterMetricFamily(
            "edge_agent_remote_commands",
            "Remote command requests answered, by outcome (ok or the error code)",
            labels=["outcome"],
        )
        for outcome, n in commands["by_outcome"].items():
            outcomes.add_metric([outcome], n)
        yield outcomes
        yield _one(
            "counter",
            "edge_agent_remote_command_rejected_response_topics",
            "Requests not executed: their response topic lay outside the device's tree",
            commands["rejected_response_topics"],
        )
        yield _one(
            "counter",
            "edge_agent_remote_command_replies_lost",
            "Replies not handed to MQTT (connection down)",
            commands["replies_lost"],
        )
    if (uplink := snap.get("uplink")) is not None:
        connected = int(uplink["state"] == "connected")
        yield _one("gauge", "edge_agent_uplink_connected", "1 while connected to the MQTT broker", connected)
    synced = int(snap["clock"]["state"] == "synced")
    yield _one("gauge", "edge_agent_clock_synced", "1 when the wall clock is synchronised", synced)
    stalled = len(snap["watchdog"]["stalled"])
    yield _one(
        "gauge", "edge_agent_watchdog_stalled_stages", "Pipeline stages past their progress budget", stalled
    )
    alarms = GaugeMetricFamily(
        "edge_agent_open_alarms", "Alarms raised and not yet cleared", labels=["code", "sensor"]
    )
    open_counts: dict[tuple[str, str], int] = {}
    for a in snap.get("alarms", []):
        which = (a["code"], a["sensor"] or "")
        open_counts[which] = open_counts.get(which, 0) + 1
    for (code, sensor), n in sorted(open_counts.items()):
        alarms.add_metric([code, sensor], n)
    yield alarms
    reloads = CounterMetricFamily("edge_agent_config_reloads", "SIGHUP reloads by result", labels=["result"])
    r = snap["reloads"]
    reloads.add_metric(["applied"], r["count"] - r["rejected"])
    reloads.add_metric(["rejected"], r["rejected"])
    yield reloads


def _loss_metrics(outbox: dict[str, Any]) -> Iterator[Metric]:
    """Everything the outbox did not keep or had to recover, beside the evictions."""
    if "dropped_events" in outbox:
        dropped = CounterMetricFamily(
            "edge_agent_outbox_dropped_events",
            "Events made and never committed (no seq), by reason; a gap event announces them",
            labels=["reason"],
        )
        for reason, n in sorted(outbox["dropped_events"].items()):
            dropped.add_metric([reason], n)
        yield dropped
        yield _one(
            "gauge",
            "edge_agent_outbox_dropped_unannounced_events",
            "Dropped events whose gap event is not committed yet",
            outbox["dropped_unannounced"],
        )
    yield _one(
        "counter",
        "edge_agent_outbox_quarantines",
        "Corrupt outbox files moved aside (and a fresh outbox started) at this start",
        outbox["quarantines"],
    )
    yield _one(
        "counter",
        "edge_agent_outbox_disk_full_episodes",
        "Times the disk became full while this process ran",
        outbox["disk_full_episodes"],
    )
    yield _one(
        "counter",
        "edge_agent_outbox_salvaged_events",
        "Events recovered into this outbox from quarantined files (edge-agent buffer salvage)",
        outbox["salvaged_events"],
    )


class GapSource(Protocol):
    """What :meth:`Metrics.follow_gap_events` needs of an outbox."""

    gap_events: int
    gap_observers: list[Callable[[int], None]]


class Metrics:
    """The daemon's registry, the stream-recorded metrics and the HTTP endpoint."""

    def __init__(self, snapshot: Snapshot) -> None:
        # No ``*_created`` series: in the text format they read as gauges such as
        # ``edge_agent_events_created 1.79e+09``, which a newcomer takes for a count.
        disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus-client 0.26
        self.registry = CollectorRegistry(auto_describe=False)
        self.publish_latency = Histogram(
            "edge_agent_publish_latency_seconds",
            "Seconds from a batch's first publish to its acknowledgement (PUBACK or ingest ack)",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.events = Counter(
            "edge_agent_events", "Events committed to the outbox, by kind", ["kind"], registry=self.registry
        )
        self.test_results = Counter(
            "edge_agent_sensor_test_results",
            "Sensor test results committed, by status",
            ["sensor", "status"],
            registry=self.registry,
        )
        self.health_changes = Counter(
            "edge_agent_sensor_health_changes",
            "Sensor health changes, by the state entered",
            ["sensor", "state"],
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)
        self.registry.register(_DaemonCollector(snapshot))
        self._server: Any = None
        self.url: str | None = None

    def count_event(self, event: NewEvent) -> None:
        self.events.labels(event.kind).inc()
        if event.kind == "test_result":
            status = event.data.get("status")
            if not isinstance(status, str):
                status = "pass" if event.data.get("passed") else "fail"
            self.test_results.labels(event.sensor or "", status).inc()

    def count_gap_events(self, n: int) -> None:
        """Gap events the outbox committed itself (evictions): they never pass :meth:`counting`."""
        self.events.labels("gap").inc(n)

    def follow_gap_events(self, outbox: GapSource) -> None:
        """Count the gap events ``outbox`` committed (at its open) and will commit."""
        self.count_gap_events(outbox.gap_events)
        outbox.gap_observers.append(self.count_gap_events)

    def counting(self, emit: Callable[[NewEvent], Awaitable[T]]) -> Callable[[NewEvent], Awaitable[T]]:
        """``emit`` that counts each event once it is committed."""

        async def counted(event: NewEvent) -> T:
            result = await emit(event)
            if result is not None:  # None: refused and dropped (OutboxWriter.submit_or_drop)
                self.count_event(event)
            return result

        return counted

    def health_changed(self, sensor: str, change: Change) -> None:
        self.health_changes.labels(sensor, change.state).inc()

    def serve(self, listen: str) -> tuple[str, int]:
        """Start the HTTP endpoint (its own thread); returns the bound address.  ``OSError`` if taken."""
        address, _, wanted = listen.rpartition(":")
        server, _thread = start_http_server(int(wanted), addr=address.strip("[]"), registry=self.registry)
        self._server = server
        host, port = str(server.server_address[0]), int(server.server_address[1])
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"
        return host, port

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def start_metrics(settings: MetricsSettings, snapshot: Snapshot) -> Metrics | None:
    """The endpoint as ``[metrics]`` says, or None (disabled, or the address is unusable:
    not fatal, the device keeps measuring; the log line says why /metrics is missing)."""
    if not settings.enabled:
        return None
    metrics = Metrics(snapshot)
    try:
        metrics.serve(settings.listen)
    except OSError as exc:
        log.error(
            "metrics: cannot listen on %s (%s); running without /metrics",
            settings.listen,
            exc.strerror or exc,
        )
        return None
    log.info("metrics on %s", metrics.url)
    return metrics
