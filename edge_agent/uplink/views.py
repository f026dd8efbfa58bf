"""Views of the readings for third-party subscribers, published beside the record.

With ``[mqtt] latest = true`` (or ``[homeassistant] enabled = true``) each sensor's
latest reading goes, retained and uncompressed, to ``devices/{id}/sensors/{sensor}/state``
(:mod:`edge_protocol.latest`), at most once per ``mqtt.latest_interval`` per sensor; with
Home Assistant enabled, each sensor quantity's discovery config (:mod:`.homeassistant`)
goes once per connection, retained, the first time the quantity is read on it (so a
broker that lost its retained messages gets them again after the reconnect).

Never through the outbox: a reading taken while disconnected has no latest-value message
(the next one after the reconnect has), and nothing here waits for the network.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable

from edge_agent.events import NewEvent
from edge_agent.settings import Settings
from edge_agent.uplink.client import Connection
from edge_agent.uplink.errors import UplinkError
from edge_agent.uplink.homeassistant import discovery_config, discovery_topic
from edge_protocol.latest import LatestValue, sensor_state_topic
from edge_protocol.units import symbol_of

log = logging.getLogger("edge_agent.uplink")

Submit = Callable[[NewEvent], Awaitable[object]]
CAL = "cal"


def latest_value(event: NewEvent) -> LatestValue:
    """The state payload of a reading event."""
    values = {q: float(v) for q, v in event.data.items() if q != CAL}
    cal = event.data.get(CAL) or {}
    return LatestValue(
        sensor=event.sensor,
        ts=event.ts,
        clock=event.clock,
        values=values,
        units={q: symbol_of(q) for q in values},
        cal={str(q): int(i) for q, i in cal.items()},
    )


class SubscriberViews:
    """Taps the reading events on their way to the outbox (:meth:`tap`)."""

    def __init__(
        self,
        settings: Callable[[], Settings],
        connection: Callable[[], Connection | None],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        """Read at every reading: a SIGHUP reload that changes the views applies at once."""
        self._connection = connection
        self._clock = clock
        self._last: dict[str, float] = {}
        self._announced: set[tuple[str, str]] = set()
        self._announced_on: Connection | None = None

    def tap(self, submit: Submit) -> Submit:
        """``submit`` that also offers each reading to the views first."""

        async def tapped(event: NewEvent) -> object:
            if event.kind == "reading" and event.sensor is not None:
                self.offer(event)
            return await submit(event)

        return tapped

    def offer(self, event: NewEvent) -> None:
        settings = self._settings()
        ha = settings.homeassistant
        if not (settings.mqtt.latest or ha.enabled) or event.sensor is None:
            return
        conn = self._connection()
        if conn is None or not conn.is_open:
            return
        device_id = settings.device.id
        if ha.enabled:
            self._announce(conn, event, device_id, ha.discovery_prefix)
        now = self._clock()
        last = self._last.get(event.sensor)
        if last is not None and now - last < settings.mqtt.latest_interval:
            return
        payload = latest_value(event).model_dump_json().encode()
        # QoS 0: a view, never competing with the record's batches for the in-flight window.
        if self._publish(conn, sensor_state_topic(device_id, event.sensor), payload, qos=0):
            self._last[event.sensor] = now

    def _announce(self, conn: Connection, event: NewEvent, device_id: str, prefix: str) -> None:
        assert event.sensor is not None
        if conn is not self._announced_on:
            self._announced_on, self._announced = conn, set()
        for quantity in event.data:
            if quantity == CAL or (event.sensor, quantity) in self._announced:
                continue
            topic = discovery_topic(prefix, device_id, event.sensor, quantity)
            config = discovery_config(device_id, event.sensor, quantity)
            if self._publish(conn, topic, json.dumps(config).encode(), qos=1):
                self._announced.add((event.sensor, quantity))

    def _publish(self, conn: Connection, topic: str, payload: bytes, *, qos: int) -> bool:
        try:
            done = conn.publish(topic, payload, qos=qos, retain=True)
        except UplinkError as exc:
            log.debug("MQTT: %s not published: %s", topic, exc)
            return False
        done.add_done_callback(_refused)
        return True


def _refused(done: asyncio.Future[None]) -> None:
    exc = None if done.cancelled() else done.exception()
    if exc is not None:
        # 0x87: the broker's ACL lacks the device's sensors/ or homeassistant/ topics.
        log.warning("MQTT: a latest-value or discovery message was refused: %s", exc)
