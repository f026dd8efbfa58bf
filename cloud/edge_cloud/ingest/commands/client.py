"""``CommandClient``: a remote command to a device and its reply (docs/PROTOCOL.md, Remote commands).

``request(device_id, name, payload, timeout)`` publishes ``payload`` (a JSON object) to
``devices/{device_id}/commands/{name}`` (QoS 1) with

- *Correlation Data*: a random request id (128 bits: a device cannot guess another's);
- *Response Topic*: ``devices/{device_id}/responses/{client id}/{request id}``, under the
  command connection's client id so the reply reaches this process (CLOUD_AUTH.md);
- *Message Expiry Interval*: the timeout, so a device that comes back later does not
  execute a command nobody waits for any more;

and blocks (the caller's thread) until the reply, the timeout, or a failure:

==========================  ====================================================
:class:`CommandUnavailable`  not connected, or the connection dropped while the
                             request was pending (failed at once, not at the timeout:
                             the reply could no longer arrive).  The device may
                             still have received the request.
:class:`CommandBusy`         ``max_pending`` requests already waiting in this process
:class:`CommandTimeout`      no reply in time; or at once when the broker answers
                             the PUBLISH with 0x10 (no session subscribes to the
                             device's commands: it is not enrolled or never connected)
:class:`CommandBadReply`     the broker refused the PUBLISH (reason code, e.g. 0x87 not
                             authorised), or the reply is not the protocol's shape
:class:`CommandTooLarge`     the request is over the protocol's 64 KiB
==========================  ====================================================

A device's ``ok: false`` is a :class:`Reply` like any other, not an exception: the caller
decides what it means.  Thread-safe: any number of threads may wait at once.

What arrives on the replies' topics is never trusted: a message is matched by its
correlation data to a pending request *of the same device* (and, on this process's
response topic, of the same request id); anything else is dropped and counted by reason
(``edge_ingest_command_replies_dropped``).  Refusals on ``devices/{id}/responses`` reach
every ingest process; those of other processes' requests are dropped as ``unknown``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from edge_cloud.ingest.commands.connection import CommandLink, Incoming
from edge_cloud.ingest.commands.metrics import CommandMetrics, command_label
from edge_cloud.ingest.errors import (
    CommandBadReply,
    CommandBusy,
    CommandError,
    CommandRefused,
    CommandTimeout,
    CommandTooLarge,
    CommandUnavailable,
)
from edge_cloud.ingest.settings import MQTTSettings
from edge_protocol.wire import DEVICE_ID_PATTERN, command_topic, device_of_topic, responses_topic

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024
"""The protocol's limit on a request's payload (the device refuses bigger ones)."""
MAX_REPLY_BYTES = 4 * 2**20
"""A reply bigger than this is not parsed (a run-test of every test is a few KiB)."""
MAX_PENDING = 256
COMMAND_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""A command name: one topic level, no wildcard (the protocol's are ``ping``, ``run-test``,
``get-calibration``; the device answers ``unknown_command`` to others)."""
NO_MATCHING_SUBSCRIBERS = 0x10


class DeviceError(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    message: str


class Reply(BaseModel):
    """A device's reply: ``ok`` with a ``result``, or not ``ok`` with an ``error``."""

    model_config = ConfigDict(frozen=True)

    command: str
    ok: bool
    result: dict[str, Any] | None = None
    error: DeviceError | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Reply:
        if self.ok and self.result is None:
            raise ValueError("ok: true without a result")
        if not self.ok and self.error is None:
            raise ValueError("ok: false without an error")
        return self


def parse_reply(payload: bytes, name: str) -> Reply:
    """The reply to command ``name``, or :class:`CommandBadReply`."""
    if len(payload) > MAX_REPLY_BYTES:
        raise CommandBadReply(f"the reply is {len(payload)} bytes, over {MAX_REPLY_BYTES}")
    try:
        reply = Reply.model_validate_json(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "reply"
        raise CommandBadReply(f"the reply is not the protocol's: {where}: {first['msg']}") from None
    if reply.command != name:
        raise CommandBadReply(f"the reply is for command {reply.command[:64]!r}, not {name!r}")
    return reply


@dataclass
class _Pending:
    request_id: str
    device_id: str
    name: str
    done: threading.Event = field(default_factory=threading.Event)
    reply: Reply | None = None
    error: CommandError | None = None
    published: bool = False
    """The broker PUBACKed the request."""
    waker: Callable[[], object] | None = None
    """Called once settled (from any thread): wakes an ``asyncio`` waiter."""

    @property
    def correlation(self) -> bytes:
        return self.request_id.encode()

    def settle(self, reply: Reply | None = None, error: CommandError | None = None) -> bool:
        """The first outcome wins (called under the client's lock)."""
        if self.done.is_set():
            return False
        self.reply, self.error = reply, error
        self.done.set()
        if self.waker is not None:
            self.waker()
        return True


class CommandClient:
    """Remote commands over this process's command connection (see the module doc)."""

    def __init__(
        self,
        settings: MQTTSettings,
        client_id: str,
        *,
        registry: CollectorRegistry,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.client_id = client_id
        self.max_pending = max_pending
        self.metrics = CommandMetrics(registry)
        self._lock = threading.Lock()
        self._pending: dict[bytes, _Pending] = {}
        self._by_mid: dict[tuple[int, int], _Pending] = {}
        self._early_acks: dict[tuple[int, int], ReasonCode] = {}
        self._link = CommandLink(
            settings,
            client_id,
            on_message=self._received,
            on_published=self._published,
            on_connected=lambda up: self.metrics.connected.set(1 if up else 0),
            on_lost=self._lost,
        )

    def start(self) -> None:
        self._link.start()

    def stop(self) -> None:
        self._link.stop()
        self._lost("the ingest is stopping")

    def connected(self) -> bool:
        return self._link.connected()

    def reply_topic(self, device_id: str, request_id: str) -> str:
        return f"{responses_topic(device_id)}/{self.client_id}/{request_id}"

    def request(self, device_id: str, name: str, payload: Mapping[str, Any], timeout: float) -> Reply:
        """Send command ``name`` to ``device_id`` and wait up to ``timeout`` seconds for its
        reply, blocking this thread."""
        pending, label = self._send(device_id, name, payload, timeout, waker=None)
        try:
            if not pending.done.wait(timeout):
                self._settle(pending, error=self._timeout(pending, timeout))
        finally:
            self._forget(pending)
        return self._outcome(pending, label)

    async def request_async(
        self, device_id: str, name: str, payload: Mapping[str, Any], timeout: float
    ) -> Reply:
        """:meth:`request` for the event loop: the wait holds no thread (an HTTP request
        waiting a minute for a device must not take one of the threadpool's few threads
        from the query routes)."""
        loop = asyncio.get_running_loop()
        woken = asyncio.Event()
        pending, label = self._send(
            device_id, name, payload, timeout, waker=lambda: loop.call_soon_threadsafe(woken.set)
        )
        try:
            try:
                await asyncio.wait_for(woken.wait(), timeout)
            except TimeoutError:
                self._settle(pending, error=self._timeout(pending, timeout))
        finally:
            self._forget(pending)
        return self._outcome(pending, label)

    def _send(
        self,
        device_id: str,
        name: str,
        payload: Mapping[str, Any],
        timeout: float,
        waker: Callable[[], object] | None,
    ) -> tuple[_Pending, str]:
        """Register the request and PUBLISH it (paho only queues it for its thread: no wait)."""
        if not DEVICE_ID_PATTERN.fullmatch(device_id):
            raise ValueError(f"not a device id: {device_id!r}")
        if not _is_command_name(name):
            raise ValueError(f"not a command name: {name!r}")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        body = json.dumps(dict(payload), separators=(",", ":"), ensure_ascii=False).encode()
        if len(body) > MAX_REQUEST_BYTES:
            raise CommandTooLarge(f"the request is {len(body)} bytes, over {MAX_REQUEST_BYTES}")
        label = command_label(name)
        request_id = secrets.token_hex(16)
        pending = _Pending(request_id, device_id, name, waker=waker)
        with self._lock:
            if len(self._pending) >= self.max_pending:
                self.metrics.failed.labels(command=label, reason="busy").inc()
                raise CommandBusy(f"{len(self._pending)} commands are already waiting for replies; try again")
            # Registered before the PUBLISH: a reply may come back before publish() returns,
            # and a connection lost meanwhile must find the request to fail it.
            self._pending[pending.correlation] = pending
            self.metrics.pending.set(len(self._pending))
        try:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.ResponseTopic = self.reply_topic(device_id, request_id)
            props.CorrelationData = pending.correlation
            props.ContentType = "application/json"
            props.MessageExpiryInterval = max(1, math.ceil(timeout))
            generation, mid, ended = self._link.publish(command_topic(device_id, name), body, props)
        except CommandUnavailable:
            self._forget(pending)
            self.metrics.failed.labels(command=label, reason="unavailable").inc()
            raise
        self.metrics.sent.labels(command=label).inc()
        with self._lock:
            early = self._early_acks.pop((generation, mid), None)
            if early is None:
                self._by_mid[(generation, mid)] = pending
        if early is not None:
            self._published_for(pending, early)
        if ended.is_set():
            # Gone between our check and the PUBLISH: the lost-connection sweep may have
            # run before the request was registered with its mid.
            self._settle(pending, error=CommandUnavailable("the connection to the broker dropped"))
        return pending, label

    def _forget(self, pending: _Pending) -> None:
        # Its packet id stays in _by_mid until its PUBACK (or the connection's end): a PUBACK
        # after the timeout must find it, not pass for the early one of a later request.
        with self._lock:
            self._pending.pop(pending.correlation, None)
            self.metrics.pending.set(len(self._pending))

    # -- outcomes ----------------------------------------------------------------------

    def _timeout(self, pending: _Pending, timeout: float) -> CommandTimeout:
        if not pending.published:
            return CommandTimeout(
                f"no reply within {timeout:g} s (the broker did not acknowledge the request)"
            )
        return CommandTimeout(f"device {pending.device_id} did not reply within {timeout:g} s")

    def _outcome(self, pending: _Pending, label: str) -> Reply:
        error = pending.error
        if error is None:
            assert pending.reply is not None
            self.metrics.replied.labels(command=label, outcome="ok" if pending.reply.ok else "error").inc()
            return pending.reply
        if isinstance(error, CommandTimeout):
            self.metrics.timed_out.labels(command=label).inc()
        elif isinstance(error, CommandUnavailable):
            self.metrics.failed.labels(command=label, reason="unavailable").inc()
        elif isinstance(error, CommandRefused):
            self.metrics.failed.labels(command=label, reason="refused").inc()
        elif isinstance(error, CommandBadReply):
            self.metrics.replied.labels(command=label, outcome="bad_reply").inc()
        raise error

    def _settle(
        self, pending: _Pending, reply: Reply | None = None, error: CommandError | None = None
    ) -> None:
        with self._lock:
            pending.settle(reply, error)

    # -- the network threads -----------------------------------------------------------

    def _published(self, generation: int, mid: int, reason: ReasonCode) -> None:
        with self._lock:
            pending = self._by_mid.pop((generation, mid), None)
            if pending is None:
                # PUBACK before request() registered the mid (it holds no lock while paho sends).
                self._early_acks[(generation, mid)] = reason
                return
        self._published_for(pending, reason)

    def _published_for(self, pending: _Pending, reason: ReasonCode) -> None:
        if reason.value == NO_MATCHING_SUBSCRIBERS:
            # No session subscribes to the device's commands: no reply can come.
            self._settle(
                pending,
                error=CommandTimeout(
                    f"device {pending.device_id} is not listening: no session of it subscribes to its "
                    "commands (never connected, or its session expired)"
                ),
            )
        elif reason.is_failure:
            self._settle(
                pending,
                error=CommandRefused(f"the broker refused the request: {reason} (0x{reason.value:02x})"),
            )
        else:
            with self._lock:
                pending.published = True

    def _received(self, message: Incoming) -> None:
        device_id = device_of_topic(message.topic)
        if device_id is None:
            self.metrics.dropped.labels(reason="topic").inc()
            return
        ours = f"{responses_topic(device_id)}/{self.client_id}/"
        if message.topic == responses_topic(device_id):
            request_id = None  # a refusal: only the correlation data says whose
        elif message.topic.startswith(ours) and "/" not in message.topic[len(ours) :]:
            request_id = message.topic[len(ours) :]
        else:
            self.metrics.dropped.labels(reason="topic").inc()
            return
        if message.correlation is None:
            self.metrics.dropped.labels(reason="no_correlation").inc()
            return
        with self._lock:
            pending = self._pending.get(message.correlation)
        if pending is None:
            self.metrics.dropped.labels(reason="unknown").inc()
            return
        if pending.device_id != device_id or (request_id is not None and request_id != pending.request_id):
            # Another device (or topic) carrying this request's correlation data: not its reply.
            self.metrics.dropped.labels(reason="mismatch").inc()
            log.warning(
                "command reply on %s carries the correlation data of a request to %s",
                message.topic,
                pending.device_id,
            )
            return
        try:
            reply = parse_reply(message.payload, pending.name)
        except CommandBadReply as exc:
            log.warning("device %s: bad reply to %s: %s", device_id, pending.name, exc)
            self._settle(pending, error=exc)
            return
        self._settle(pending, reply=reply)

    def _lost(self, reason: str) -> None:
        """Fail every pending request now: their replies would come on a connection that is gone."""
        with self._lock:
            waiting = list(self._pending.values())
            self._early_acks.clear()
            self._by_mid.clear()  # that connection's packet ids: no PUBACK will come for them
            for pending in waiting:
                pending.settle(
                    error=CommandUnavailable(
                        f"the connection to the broker dropped ({reason}); the device may or may not "
                        "have received the command"
                    )
                )


def _is_command_name(name: str) -> bool:
    return re.fullmatch(COMMAND_NAME, name) is not None
