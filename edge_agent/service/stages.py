"""What counts as progress for each pipeline stage, and how long it may go without.

- ``sampling:NAME``: the sensor's schedule ticks (a good read, an error, a timeout, a
  skipped tick all count: a sensor that keeps failing is still a live loop).  A tick
  that never ends (a commit that never returns) is a stall.  Budget: two intervals plus
  the read timeout, the rebuild allowance and a margin.
- ``outbox-writer``: commits, or nothing queued and no transaction running.
- ``uplink``: connection attempts, publishes and acks, or connected with nothing to
  send.  During an outage its progress is the reconnect loop (one attempt at least every
  ``reconnect_max`` + connect timeout), so an outage is not a stall, a wedged task is.
"""

from __future__ import annotations

from collections.abc import Hashable

from edge_agent.outbox.store import Outbox
from edge_agent.outbox.writer import OutboxWriter
from edge_agent.sampling.sampler import SensorLoop
from edge_agent.service.watchdog import ProgressMonitor
from edge_agent.settings import MQTTSettings
from edge_agent.uplink import Forwarder
from edge_agent.uplink.params import CONNECT_TIMEOUT

MARGIN_S = 10.0
"""Scheduling slack on a loaded 2-core device (a tick, a commit, a PUBACK late by seconds)."""
WRITER_BUDGET_S = 60.0
"""A healthy commit takes well under a second on an SD card; a failing one gives up after
``storage.commit_timeout`` and the writer goes on with the next batch.  60 s without a
commit while events wait covers a disk-full recovery (checkpoint, evict, retry) several
times over; beyond that the writer is wedged and a restart is the remedy."""
REBUILD_ALLOWANCE_S = 10.0


def sampling_stage(name: str) -> str:
    return f"sampling:{name}"


def watch_sensor(monitor: ProgressMonitor, loop: SensorLoop) -> None:
    c = loop.counters

    def ticks() -> Hashable:
        return (c.reads, c.errors, c.timeouts, c.skipped_busy, c.skipped_open)

    budget = 2 * loop.interval + loop.timeout + REBUILD_ALLOWANCE_S + MARGIN_S
    monitor.watch(sampling_stage(loop.name), budget, ticks)


def watch_writer(monitor: ProgressMonitor, writer: OutboxWriter, budget: float = WRITER_BUDGET_S) -> None:
    monitor.watch(
        "outbox-writer", budget, lambda: writer.batches, lambda: writer.queued == 0 and not writer.committing
    )


def uplink_budget(mqtt: MQTTSettings) -> float:
    return max(mqtt.reconnect_max, 2 * mqtt.keepalive, mqtt.ack_timeout) + CONNECT_TIMEOUT + MARGIN_S


def watch_uplink(monitor: ProgressMonitor, forwarder: Forwarder, outbox: Outbox, mqtt: MQTTSettings) -> None:
    st = forwarder.stats

    def progress() -> Hashable:
        return (
            st.state,
            st.connects,
            st.connect_failures,
            st.connections_lost,
            st.published_batches,
            st.acked_events,
        )

    def idle() -> bool:
        if st.state in ("stopped", "stopping"):
            return True
        return st.state == "connected" and st.inflight_batches == 0 and outbox.pending_count == 0

    monitor.watch("uplink", uplink_budget(mqtt), progress, idle)
