"""Remote commands: ``devices/{id}/commands/{name}`` in, a reply on the request's response topic.

The cloud publishes a request with the MQTT v5 *Response Topic* and *Correlation Data*
properties; the device answers on the response topic with the same correlation data.
Commands::

    ping             {}                                   → {"pong": true, "device_id", "boot", "version", "ts"}
    run-test         {"test": NAME} | {"all": true}       → {"results": [test_result data, …]}
    get-calibration  {} | {"sensor": NAME}                → {"calibrations": [record, …]}

Every reply is ``{"command", "ok": true, "result": {…}}`` or ``{"command", "ok": false,
"error": {"code", "message"}}``.  Error codes: ``unknown_command``, ``bad_request``
(payload not a JSON object, unknown keys, unknown test or sensor), ``busy`` (too many
commands pending), ``response_topic_rejected``, ``internal``.

The response topic must lie under ``devices/{id}/`` and outside the device's own
``events``, ``status``, ``acks`` and ``commands`` topics (a reply there would feed the
ingest or the device itself).  A request whose response topic is missing or elsewhere
is **not executed**; its error reply goes to :func:`~edge_protocol.wire.responses_topic`
(``devices/{id}/responses``), it is logged and counted (``rejected_response_topics``),
and nothing is ever published outside the device's tree.

Replies are QoS 1 but not stored: a reply lost with the connection is not sent again
(the cloud asks again).  ``run-test`` results also become ``test_result`` events, which
are durable.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from edge_agent import __version__
from edge_agent.calibration.active import ActiveCalibrations
from edge_agent.sensor_tests.runner import TestRunner
from edge_agent.uplink.client import Message
from edge_protocol.wire import command_name, commands_filter, responses_topic, rfc3339_ms

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024
MAX_PENDING = 8
"""Commands executing or queued at once; more get a ``busy`` reply."""
RESERVED = ("events", "status", "acks", "commands")
"""Topics under ``devices/{id}/`` a reply must never go to."""

Publish = Callable[[str, bytes, bytes | None], object]
"""Sends a reply: (topic, payload, correlation data).  Raises when not connected."""


class CommandError(Exception):
    """A request that gets an error reply."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PingArgs(_Args):
    pass


class RunTestArgs(_Args):
    test: str | None = None
    all: bool = False

    @model_validator(mode="after")
    def _one(self) -> RunTestArgs:
        if (self.test is None) == (not self.all):
            raise ValueError('give either "test": NAME or "all": true')
        return self


class GetCalibrationArgs(_Args):
    sensor: str | None = None


OUTCOMES = ("ok", "busy", "bad_request", "unknown_command", "response_topic_rejected", "internal")
"""How a request ended: answered ``ok``, or the error code of its reply."""


@dataclass
class CommandStats:
    """Counts since the daemon started (kept across reconnects and reloads); ``status`` and
    the metrics (``edge_agent_remote_commands{outcome}``) show them."""

    received: int = 0
    answered: int = 0
    errors: int = 0
    """Error replies sent (unknown command, bad request, busy, …)."""
    rejected_response_topics: int = 0
    replies_lost: int = 0
    """Replies that could not be handed to MQTT (connection down)."""
    by_outcome: Counter[str] = field(default_factory=Counter)
    """Replies by outcome (:data:`OUTCOMES`), whether or not they could be sent."""
    busy_streak: int = 0
    """Requests refused as busy since the last one accepted (for the log line)."""

    def as_json(self) -> dict[str, object]:
        return {
            "received": self.received,
            "answered": self.answered,
            "errors": self.errors,
            "rejected_response_topics": self.rejected_response_topics,
            "replies_lost": self.replies_lost,
            "by_outcome": {outcome: self.by_outcome[outcome] for outcome in OUTCOMES},
        }


@dataclass(frozen=True)
class Reply:
    topic: str
    payload: dict[str, Any]
    correlation: bytes | None

    def encode(self) -> bytes:
        return json.dumps(self.payload, separators=(",", ":"), ensure_ascii=False).encode()


class CommandDispatcher:
    """Executes remote commands and replies; bounded, never raises into the MQTT client."""

    def __init__(
        self,
        device_id: str,
        *,
        runner: TestRunner,
        calibrations: ActiveCalibrations,
        publish: Publish,
        boot: str,
        sensors: Collection[str] | None = None,
        stats: CommandStats | None = None,
    ) -> None:
        self.device_id = device_id
        self._sensors = None if sensors is None else sorted(sensors)
        """The configured sensor names, to refuse an unknown one (``None``: not checked)."""
        self.topic_filter = commands_filter(device_id)
        self._prefix = f"devices/{device_id}/"
        self._runner = runner
        self._calibrations = calibrations
        self._publish = publish
        self._boot = boot
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = stats if stats is not None else CommandStats()

    def matches(self, topic: str) -> bool:
        return command_name(self.device_id, topic) is not None

    def receive(self, message: Message) -> None:
        """Called on the event loop for each message on the commands topic."""
        self.stats.received += 1
        if len(self._tasks) >= MAX_PENDING:
            if not self.stats.busy_streak:
                log.warning(
                    "remote commands: %d already pending; refusing more as busy until one finishes",
                    MAX_PENDING,
                )
            self.stats.busy_streak += 1
            self._send(
                self._error(
                    message, CommandError("busy", f"{MAX_PENDING} commands already pending; try again later")
                )
            )
            return
        if self.stats.busy_streak:
            log.warning(
                "remote commands: %d requests were refused as busy; accepting again", self.stats.busy_streak
            )
            self.stats.busy_streak = 0
        task = asyncio.get_running_loop().create_task(self._serve(message), name="remote-command")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, message: Message) -> None:
        self._send(await self.handle(message))

    async def handle(self, message: Message) -> Reply:
        """The reply to one request (also for the error cases)."""
        try:
            topic = self._reply_topic(message)
        except CommandError as exc:
            self.stats.rejected_response_topics += 1
            log.warning("remote command on %s rejected: %s", message.topic, exc)
            return self._error(message, exc)
        name = command_name(self.device_id, message.topic) or ""
        try:
            result = await self._execute(name, message.payload)
        except CommandError as exc:
            return self._error(message, exc, topic)
        except Exception as exc:  # a bug: an error reply, and the daemon goes on
            log.exception("remote command %s failed", name)
            return self._error(message, CommandError("internal", f"{type(exc).__name__}: {exc}"), topic)
        return Reply(topic, {"command": name, "ok": True, "result": result}, message.correlation_data)

    def _reply_topic(self, message: Message) -> str:
        topic = message.response_topic
        if not topic:
            raise CommandError("response_topic_rejected", "the request has no MQTT v5 response topic")
        rest = topic.removeprefix(self._prefix)
        if (
            rest == topic
            or not rest
            or any(c in topic for c in "+#\0")
            or len(topic.encode()) > 1024
            or rest.split("/", 1)[0] in RESERVED
        ):
            raise CommandError(
                "response_topic_rejected",
                f"response topic {topic[:200]!r} is not allowed: use one under {self._prefix} "
                f"other than {', '.join(RESERVED)}, e.g. {self._prefix}responses/<id>",
            )
        return topic

    async def _execute(self, name: str, payload: bytes) -> dict[str, Any]:
        if name == "ping":
            _args(PingArgs, payload)
            return {
                "pong": True,
                "device_id": self.device_id,
                "boot": self._boot,
                "version": __version__,
                "ts": rfc3339_ms(datetime.now(UTC)),
            }
        if name == "run-test":
            run = _args(RunTestArgs, payload)
            if run.all:
                tests = self._runner.enabled()
            else:
                assert run.test is not None
                test = self._runner.get(run.test)
                if test is None:
                    known = ", ".join(sorted(self._runner.tests)) or "none configured"
                    raise CommandError("bad_request", f"unknown test {run.test!r} (tests: {known})")
                tests = [test]
            results = await self._runner.run_many(tests, "remote")
            return {"results": [r.event_data() for r in results]}
        if name == "get-calibration":
            get = _args(GetCalibrationArgs, payload)
            records = self._calibrations.records()
            if get.sensor is not None:
                if self._sensors is not None and get.sensor not in self._sensors:
                    known = ", ".join(self._sensors) or "none configured"
                    raise CommandError("bad_request", f"unknown sensor {get.sensor!r} (sensors: {known})")
                records = [r for r in records if r.sensor == get.sensor]
            return {"calibrations": [r.as_json() for r in sorted(records, key=lambda r: r.id)]}
        raise CommandError(
            "unknown_command", f"unknown command {name!r}; commands: ping, run-test, get-calibration"
        )

    def _error(self, message: Message, exc: CommandError, topic: str | None = None) -> Reply:
        name = command_name(self.device_id, message.topic) or message.topic
        payload = {"command": name, "ok": False, "error": {"code": exc.code, "message": str(exc)}}
        return Reply(topic or responses_topic(self.device_id), payload, message.correlation_data)

    def _send(self, reply: Reply) -> None:
        if reply.payload["ok"]:
            self.stats.by_outcome["ok"] += 1
        else:
            self.stats.errors += 1
            self.stats.by_outcome[reply.payload["error"]["code"]] += 1
        try:
            self._publish(reply.topic, reply.encode(), reply.correlation)
        except Exception as exc:  # not connected (any more): the cloud asks again
            self.stats.replies_lost += 1
            log.warning("reply to %s not sent: %s", reply.payload["command"], exc)
            return
        self.stats.answered += 1


def _args(model: type[_Args], payload: bytes) -> Any:
    if len(payload) > MAX_REQUEST_BYTES:
        raise CommandError("bad_request", f"request of {len(payload)} bytes exceeds {MAX_REQUEST_BYTES}")
    try:
        data = json.loads(payload) if payload.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise CommandError("bad_request", f"payload is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CommandError("bad_request", f"payload must be a JSON object, not {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise CommandError("bad_request", problems) from exc
