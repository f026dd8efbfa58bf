"""Connecting: a session with the broker, retried with exponential backoff and full jitter.

Each attempt opens a :class:`~edge_agent.uplink.client.Connection` and makes the session's
subscriptions (a connection that cannot subscribe is no connection), racing the stop
request.  Failures are logged once per series (:mod:`edge_agent.uplink.problems`); the
waits between attempts come from :class:`~edge_agent.uplink.backoff.FullJitter` and end
early on stop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from edge_agent.settings import MQTTSettings
from edge_agent.uplink.backoff import FullJitter
from edge_agent.uplink.client import Connection, MessageHandler
from edge_agent.uplink.errors import BrokerUnreachable, ConnectFailed, ConnectionLost
from edge_agent.uplink.params import ConnectParams
from edge_agent.uplink.problems import ProblemSeries
from edge_agent.uplink.stats import UplinkStats
from edge_agent.uplink.stopping import Stopped, StopSignal

log = logging.getLogger("edge_agent.uplink")

Opener = Callable[[ConnectParams, MessageHandler], Awaitable[Connection]]


async def open_connection(params: ConnectParams, on_message: MessageHandler) -> Connection:
    return await Connection.open(params, on_message=on_message)


class Connector:
    def __init__(
        self,
        settings: MQTTSettings,
        *,
        opener: Opener,
        params: Callable[[], ConnectParams],
        on_message: MessageHandler,
        subscribe: Callable[[Connection], Awaitable[None]],
        stats: UplinkStats,
        backoff: FullJitter,
        stop: StopSignal,
        wall_clock: Callable[[], float],
    ) -> None:
        self._settings = settings
        self._open = opener
        self._params = params
        """Built again for every attempt: the will carries the outbox's current epoch."""
        self._on_message = on_message
        self._subscribe = subscribe
        self._stats = stats
        self._backoff = backoff
        self._stop = stop
        self._wall = wall_clock
        self._connect_problem = ProblemSeries(log, "MQTT: cannot connect")

    async def connect(self) -> Connection | None:
        """A connection with its subscriptions made, or None when stop came first."""
        retrying = AsyncRetrying(
            wait=self._backoff,
            retry=retry_if_exception_type(ConnectFailed),
            sleep=self._stop.sleep,
            before_sleep=self._before_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt()
        except Stopped:
            return None
        return None  # pragma: no cover - tenacity either returns or raises

    async def _attempt(self) -> Connection:
        if self._stop.requested:
            raise Stopped
        self._stats.state = "connecting"
        params = self._params()
        opening = asyncio.create_task(self._open_session(params), name="uplink-connect")
        stop = asyncio.create_task(self._stop.wait())
        await asyncio.wait({opening, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not opening.done():
            opening.cancel()
            await asyncio.gather(opening, return_exceptions=True)
            raise Stopped
        try:
            conn = opening.result()
        except ConnectFailed as exc:
            self._stats.state = "disconnected"
            self._stats.connect_failures += 1
            self._stats.note_error(exc, self._wall())
            raise
        self._stats.connects += 1
        self._stats.state = "connected"
        self._stats.connected_since = self._wall()
        self._connect_problem.recovered(f"MQTT: connected to {params.address}")
        log.info(
            "MQTT: connected to %s as %s (%s, delivery %s)",
            params.address,
            params.client_id,
            "session resumed" if conn.session_present else "new session",
            self._settings.delivery,
        )
        return conn

    async def _open_session(self, params: ConnectParams) -> Connection:
        conn = await self._open(params, self._on_message)
        try:
            await self._subscribe(conn)
        except ConnectionLost as exc:
            raise BrokerUnreachable(f"connection lost while subscribing: {exc.reason}") from exc
        except BaseException:
            conn.abort("subscription failed")
            raise
        return conn

    async def _before_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        if exc is not None:
            self._connect_problem.failed(exc, f"retrying in {delay:.1f} s; events keep buffering")
