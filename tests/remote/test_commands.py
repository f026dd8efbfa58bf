"""Remote commands: request/response rules, bad input, and a run-test round trip through Mosquitto."""

from __future__ import annotations

import asyncio
import json
import queue
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.calibration import ActiveCalibrations
from edge_agent.remote import CommandDispatcher, Reply
from edge_agent.settings import MQTTSettings
from edge_agent.uplink import Forwarder, Message
from edge_protocol.wire import command_name, command_topic
from tests.mosquitto import Mosquitto
from tests.sensor_tests.helpers import bench
from tests.uplink.helpers import until
from tests.uplink.memory_outbox import MemoryOutbox

DEVICE = "dev-1"
RANGE = {
    "name": "climate-range",
    "sensor": "climate",
    "kind": "range",
    "limits": {"temperature_c": [-10, 50]},
}
STUCK = {
    "name": "cabinet-stuck",
    "sensor": "cabinet",
    "kind": "stuck",
    "quantity": "relative_humidity_pct",
    "samples": 3,
    "spacing": 0.1,
}


def dispatcher(runner: Any, sent: list[tuple[str, bytes, bytes | None]]) -> CommandDispatcher:
    return CommandDispatcher(
        DEVICE,
        runner=runner,
        calibrations=ActiveCalibrations(),
        publish=lambda topic, payload, corr: sent.append((topic, payload, corr)),
        boot="boot-1",
        sensors=["climate", "cabinet"],
    )


def request(
    name: str, payload: Any = None, *, response: str | None = "devices/dev-1/responses/r1"
) -> Message:
    body = payload if isinstance(payload, bytes) else json.dumps(payload or {}).encode()
    return Message(command_topic(DEVICE, name), body, {}, response_topic=response, correlation_data=b"c-1")


def answer(d: CommandDispatcher, message: Message) -> Reply:
    return asyncio.run(d.handle(message))


def test_topics() -> None:
    assert command_name(DEVICE, "devices/dev-1/commands/ping") == "ping"
    assert command_name(DEVICE, "devices/dev-2/commands/ping") is None
    assert command_name(DEVICE, "devices/dev-1/commands/a/b") is None
    assert command_name(DEVICE, "devices/dev-1/commands/") is None


def test_ping_and_run_test_and_get_calibration() -> None:
    with bench() as b:
        d = dispatcher(b.runner([RANGE, STUCK]), [])
        pong = answer(d, request("ping"))
        assert pong.topic == "devices/dev-1/responses/r1" and pong.correlation == b"c-1"
        assert pong.payload["ok"] and pong.payload["result"]["pong"] is True
        one = answer(d, request("run-test", {"test": "climate-range"}))
        (result,) = one.payload["result"]["results"]
        assert (
            result["test"] == "climate-range" and result["status"] == "pass" and result["trigger"] == "remote"
        )
        every = answer(d, request("run-test", {"all": True}))
        assert [r["test"] for r in every.payload["result"]["results"]] == ["climate-range", "cabinet-stuck"]
        cal = answer(d, request("get-calibration", {"sensor": "climate"}))
        assert cal.payload == {"command": "get-calibration", "ok": True, "result": {"calibrations": []}}


@pytest.mark.parametrize(
    ("name", "payload", "code", "words"),
    [
        ("reboot", {}, "unknown_command", "unknown command 'reboot'"),
        ("run-test", {"test": "nope"}, "bad_request", "unknown test 'nope'"),
        ("run-test", {}, "bad_request", "either"),
        ("run-test", {"test": "climate-range", "all": True}, "bad_request", "either"),
        ("run-test", {"tset": "x"}, "bad_request", "tset"),
        ("run-test", b"{not json", "bad_request", "not JSON"),
        ("run-test", b"\xff\xfe", "bad_request", "not JSON"),
        ("run-test", b"[1, 2]", "bad_request", "JSON object"),
        ("run-test", b'{"test": "' + b"x" * 70_000 + b'"}', "bad_request", "exceeds"),
        ("ping", {"extra": 1}, "bad_request", "extra"),
        ("get-calibration", {"sensor": 5}, "bad_request", "sensor"),
        (
            "get-calibration",
            {"sensor": "nope"},
            "bad_request",
            "unknown sensor 'nope' (sensors: cabinet, climate)",
        ),
    ],
)
def test_bad_requests_get_error_replies(name: str, payload: Any, code: str, words: str) -> None:
    with bench(("climate",)) as b:
        d = dispatcher(b.runner([RANGE]), [])
        reply = answer(d, request(name, payload))
        assert reply.topic == "devices/dev-1/responses/r1" and reply.correlation == b"c-1"
        assert reply.payload["ok"] is False
        assert reply.payload["error"]["code"] == code
        assert words in reply.payload["error"]["message"]


@pytest.mark.parametrize(
    "response",
    [
        None,
        "",
        "elsewhere/replies",
        "devices/dev-2/responses/x",
        "devices/dev-1",
        "devices/dev-1/",
        "devices/dev-1/events",
        "devices/dev-1/status",
        "devices/dev-1/acks",
        "devices/dev-1/commands/ping",
        "devices/dev-1/responses/+",
        "devices/dev-1/responses/#",
    ],
)
def test_response_topic_outside_the_device_tree_is_refused_and_not_executed(response: str | None) -> None:
    with bench(("climate",)) as b:
        runner = b.runner([RANGE])
        ran: list[str] = []
        original = runner.run

        async def spy(test: Any, trigger: Any = "schedule") -> Any:
            ran.append(test.name)
            return await original(test, trigger)

        runner.run = spy  # type: ignore[method-assign]
        sent: list[tuple[str, bytes, bytes | None]] = []
        d = dispatcher(runner, sent)
        reply = answer(d, request("run-test", {"all": True}, response=response))
        assert reply.topic == "devices/dev-1/responses"
        assert reply.payload["error"]["code"] == "response_topic_rejected"
        assert ran == []
        assert d.stats.rejected_response_topics == 1


class Requester:
    """The cloud side: publishes requests with a response topic, collects the replies."""

    def __init__(self, broker: Mosquitto) -> None:
        self.replies: queue.Queue[tuple[str, dict[str, Any], bytes | None]] = queue.Queue()
        self.subscribed = queue.Queue[bool]()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"cloud-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5
        )
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.put(True)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.client.subscribe(f"devices/{DEVICE}/responses/#", qos=1)
        self.subscribed.get(timeout=10)

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        corr = getattr(msg.properties, "CorrelationData", None)
        self.replies.put((msg.topic, json.loads(msg.payload), corr))

    def send(self, name: str, payload: bytes, response: str | None, correlation: bytes) -> None:
        props = Properties(PacketTypes.PUBLISH)
        if response is not None:
            props.ResponseTopic = response
        props.CorrelationData = correlation
        self.client.publish(command_topic(DEVICE, name), payload, qos=1, properties=props).wait_for_publish(
            10
        )

    def next(self, timeout: float = 30.0) -> tuple[str, dict[str, Any], bytes | None]:
        return self.replies.get(timeout=timeout)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_run_test_round_trip_through_mosquitto(tmp_path: Path) -> None:
    with Mosquitto(tmp_path / "broker") as broker, bench() as b:
        runner = b.runner([RANGE, STUCK])
        b.sim("cabinet").signals["relative_humidity_pct"].set_faults(stuck=True)
        settings = MQTTSettings(
            host="127.0.0.1", port=broker.port, keepalive=5, reconnect_min=0.05, reconnect_max=0.4
        )

        async def scenario() -> None:
            forwarder = Forwarder(MemoryOutbox(), settings, device_id=DEVICE, boot="boot-1")
            d = CommandDispatcher(
                DEVICE,
                runner=runner,
                calibrations=b.calibrations,
                publish=forwarder.publish_reply,
                boot="boot-1",
            )
            forwarder.commands = d
            task = asyncio.create_task(forwarder.run())
            await until(lambda: forwarder.stats.state == "connected", 20, "connected")
            cloud = await asyncio.to_thread(Requester, broker)
            try:
                await asyncio.to_thread(
                    cloud.send, "run-test", b'{"all": true}', "devices/dev-1/responses/q1", b"\x01corr"
                )
                topic, body, corr = await asyncio.to_thread(cloud.next)
                assert topic == "devices/dev-1/responses/q1" and corr == b"\x01corr"
                statuses = {r["test"]: r["status"] for r in body["result"]["results"]}
                assert statuses == {"climate-range": "pass", "cabinet-stuck": "fail"}
                # A reply that would leave the tree goes to …/responses instead, and nothing runs.
                await asyncio.to_thread(cloud.send, "run-test", b'{"all": true}', "other/topic", b"c2")
                topic, body, corr = await asyncio.to_thread(cloud.next)
                assert topic == "devices/dev-1/responses" and corr == b"c2"
                assert body["error"]["code"] == "response_topic_rejected"
                await asyncio.to_thread(cloud.send, "selfdestruct", b"", "devices/dev-1/responses/q3", b"c3")
                topic, body, corr = await asyncio.to_thread(cloud.next)
                assert body["error"]["code"] == "unknown_command" and corr == b"c3"
                await asyncio.to_thread(cloud.send, "ping", b"", "devices/dev-1/responses/q4", b"c4")
                topic, body, corr = await asyncio.to_thread(cloud.next)
                assert body["ok"] and corr == b"c4"
                assert d.stats.received == 4 and d.stats.answered == 4 and d.stats.errors == 2
                assert forwarder.stats.state == "connected"  # nothing of this broke the uplink
            finally:
                await asyncio.to_thread(cloud.close)
                await d.close()
                await forwarder.stop()
                await task

        asyncio.run(scenario())


def test_a_busy_flood_is_counted_by_outcome_logged_twice_and_exported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 18 defect 4: 956 of 1,000 refused as busy, and nothing told the operator."""
    from prometheus_client import generate_latest

    from edge_agent.cli.common import console
    from edge_agent.cli.status_cmd import render
    from edge_agent.service.metrics import Metrics
    from tests.cli.test_status_render import snapshot

    sent: list[tuple[str, bytes, bytes | None]] = []
    d = dispatcher(None, sent)

    async def flood() -> None:
        for _ in range(20):  # nothing runs in between: 8 pending, then busy
            d.receive(request("ping"))
        await asyncio.sleep(0.05)  # the pending pings answer
        d.receive(request("ping"))  # room again
        await asyncio.sleep(0.05)
        d.receive(request("nope"))
        await asyncio.sleep(0.05)

    with caplog.at_level("WARNING", logger="edge_agent.remote.commands"):
        asyncio.run(flood())
    assert d.stats.by_outcome == {"ok": 9, "busy": 12, "unknown_command": 1}
    busy_lines = [r.getMessage() for r in caplog.records if "busy" in r.getMessage()]
    assert len(busy_lines) == 2 and "12 requests were refused as busy" in busy_lines[1]

    snap = {**snapshot("", ""), "commands": d.stats.as_json(), "sensors": [], "metrics": None}
    with console.capture() as captured:
        render(snap)
    assert "22 commands received: 9 ok, 12 busy, 1 unknown_command" in captured.get()
    metrics = Metrics(lambda: {k: v for k, v in snap.items() if k not in ("outbox", "uplink")})
    text = generate_latest(metrics.registry).decode()
    assert 'edge_agent_remote_commands_total{outcome="busy"} 12.0' in text
    assert "edge_agent_remote_command_rejected_response_topics_total 0.0" in text
