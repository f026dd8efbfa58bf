"""``POST /v1/devices/{id}/commands/{name}`` through a private Mosquitto: a real
``edge-agent run`` answers ping, run-test and get-calibration through the API; the status
mapping (404, 409/422 for the device's refusals, 413, 429, 502, 503, 504); and the command
client facing hostile replies, other processes' replies, a broker that goes away, and the
auth service's own broker (mutual TLS, ACL: 0x87 mapped)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from httpx import Response
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine

from edge_cloud.ingest.api.app import create_app
from edge_cloud.ingest.api.state import ApiState
from edge_cloud.ingest.commands import CommandClient, commands_client_id
from edge_cloud.ingest.consumer import Consumer, IngestMetrics
from edge_cloud.ingest.errors import CommandBadReply, CommandRefused, CommandTimeout, CommandUnavailable
from edge_cloud.ingest.settings import IngestSettings, MQTTSettings
from edge_cloud.ingest.store import StatusMessage, Store, Work
from tests.cloud.broker import auth_with_broker
from tests.cloud.ingest_write.helpers import ingest_settings, migrated
from tests.cloud.ingest_write.processes import agent_config
from tests.cloud.ingest_write.publisher import wait_for
from tests.cloud.ingest_write.test_import import Tokens
from tests.daemon.agent_process import start_agent, stop_agent
from tests.mosquitto import Mosquitto

CONSUMER_ID = "ingest@test-1"
ROUTE = "/v1/devices/{}/commands/{}"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker") as b:
        yield b


def settings_for(tmp_path: Path, broker: Mosquitto) -> IngestSettings:
    return ingest_settings(
        tmp_path,
        f"sqlite:///{tmp_path / 'ingest.db'}",
        mqtt={
            "host": "127.0.0.1",
            "port": broker.port,
            "client_id": CONSUMER_ID,
            "keepalive": 5,
            "reconnect_max": 0.3,
        },
        consumer={"batch_max_wait": 0.05},
    )


@contextmanager
def command_client(mqtt_settings: MQTTSettings, client_id: str, **kwargs: Any) -> Iterator[CommandClient]:
    client = CommandClient(mqtt_settings, client_id, registry=CollectorRegistry(), **kwargs)
    client.start()
    try:
        wait_for(client.connected, 15, "the command client connected")
        yield client
    finally:
        client.stop()


@dataclass
class World:
    engine: Engine
    store: Store
    commands: CommandClient
    http: TestClient
    tokens: Tokens
    registry: CollectorRegistry

    def post(
        self, device_id: str, name: str, body: Any = None, *, scope: str = "devices:write", **params: Any
    ) -> Response:
        content = (
            body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else b"")
        )
        return self.http.post(
            ROUTE.format(device_id, name),
            content=content,
            params=params,
            headers=self.tokens.token(scope) | {"Content-Type": "application/json"},
        )

    def seen(self, device_id: str) -> None:
        """The ingest has heard of ``device_id`` (a status message stored)."""
        now = datetime.now(UTC)
        self.store.write(Work(statuses=[StatusMessage(device_id, True, now, "b", None, now, retained=False)]))

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


@contextmanager
def world(tmp_path: Path, broker: Mosquitto, *, consumer: bool = False, **client: Any) -> Iterator[World]:
    settings = settings_for(tmp_path, broker)
    with migrated(str(settings.database_url)) as engine:
        store = Store(engine, quarantine_rows=100)
        registry = CollectorRegistry()
        running = None
        if consumer:  # stores the devices' status: how the ingest learns a real device exists
            running = Consumer(settings, engine, metrics=IngestMetrics(registry), store=store)
            running.start()
            assert running.wait_connected(15)
        commands = CommandClient(settings.mqtt, commands_client_id(CONSUMER_ID), registry=registry, **client)
        commands.start()
        tokens = Tokens()
        app = create_app(
            ApiState(
                settings=settings,
                engine=engine,
                token_verifier=tokens.verifier,
                registry=registry,
                commands=commands,
            )
        )
        try:
            wait_for(commands.connected, 15, "the command client connected")
            with TestClient(app) as http:
                yield World(engine, store, commands, http, tokens, registry)
        finally:
            commands.stop()
            if running is not None:
                running.stop()


class FakeDevice:
    """A device's MQTT side made by hand: receives its commands, answers as told."""

    def __init__(self, broker: Mosquitto, device_id: str) -> None:
        self.device_id = device_id
        self.requests: list[tuple[str, bytes, str | None, bytes | None]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"fake-{device_id}", protocol=mqtt.MQTTv5
        )
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.client.subscribe(f"devices/{device_id}/commands/+", qos=1)
        assert self._subscribed.wait(10)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        props = msg.properties
        with self._lock:
            self.requests.append(
                (
                    msg.topic,
                    bytes(msg.payload),
                    getattr(props, "ResponseTopic", None),
                    getattr(props, "CorrelationData", None),
                )
            )

    def received(self, n: int) -> list[tuple[str, bytes, str | None, bytes | None]]:
        wait_for(lambda: len(self.requests) >= n, 15, f"{n} requests at the device")
        with self._lock:
            return list(self.requests)

    def send(self, topic: str, payload: bytes, correlation: bytes | None) -> None:
        props = Properties(PacketTypes.PUBLISH)
        if correlation is not None:
            props.CorrelationData = correlation
        self.client.publish(topic, payload, qos=1, properties=props).wait_for_publish(10)

    def answer(self, index: int, body: dict[str, Any]) -> None:
        _topic, _payload, response, correlation = self.requests[index]
        assert response is not None
        self.send(response, json.dumps(body).encode(), correlation)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def pong(device_id: str) -> dict[str, Any]:
    return {"command": "ping", "ok": True, "result": {"pong": True, "device_id": device_id}}


TESTS_AND_SENSORS = """
[[tests]]
name = "climate-range"
sensor = "climate"
kind = "range"
limits = { temperature_c = [-40, 85] }
"""


def test_a_command_round_trip_through_the_api_reaches_a_running_daemon_and_returns_its_reply(
    tmp_path: Path, broker: Mosquitto
) -> None:
    directory = tmp_path / "agent"
    config = agent_config(directory, broker, "site-cmd", interval="1s")
    config.write_text(config.read_text() + TESTS_AND_SENSORS)
    calibrated = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_agent",
            "calibrate",
            "climate",
            "-q",
            "temperature_c",
            "--reference",
            "20",
            "--reading",
            "19.5",
            "--technician",
            "tests",
            "--yes",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert calibrated.returncode == 0, calibrated.stdout + calibrated.stderr
    with world(tmp_path, broker, consumer=True) as w:
        agent = start_agent(config, directory / "agent.log")
        try:
            # Known once its birth is stored; answering once it has subscribed to its commands.
            wait_for(
                lambda: w.post("site-cmd", "ping", timeout=2).status_code == 200, 60, "the daemon to answer"
            )
            r = w.post("site-cmd", "ping")
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["command"] == "ping" and body["ok"] is True
            assert body["result"]["pong"] is True and body["result"]["device_id"] == "site-cmd"

            r = w.post("site-cmd", "run-test", {"test": "climate-range"})
            assert r.status_code == 200, r.text
            (result,) = r.json()["result"]["results"]
            assert (result["test"], result["status"], result["trigger"]) == (
                "climate-range",
                "pass",
                "remote",
            )

            r = w.post("site-cmd", "get-calibration", {"sensor": "climate"})
            assert r.status_code == 200, r.text
            (record,) = r.json()["result"]["calibrations"]
            assert (record["sensor"], record["quantity"], record["technician"]) == (
                "climate",
                "temperature_c",
                "tests",
            )

            # The device's refusals: the caller's mistakes are 422, with the device's error.
            r = w.post("site-cmd", "reboot")
            assert r.status_code == 422, r.text
            assert r.json()["error"]["code"] == "unknown_command" and r.json()["command"] == "reboot"
            r = w.post("site-cmd", "run-test", {"test": "nope"})
            assert r.status_code == 422 and r.json()["error"]["code"] == "bad_request", r.text

            assert w.metric("edge_ingest_commands_replied_total", command="run-test", outcome="ok") == 1
            assert w.metric("edge_ingest_commands_replied_total", command="run-test", outcome="error") == 1
            assert w.metric("edge_ingest_commands_replied_total", command="other", outcome="error") == 1
            assert (
                w.metric("edge_ingest_commands_replied_total", command="get-calibration", outcome="ok") == 1
            )
        finally:
            assert stop_agent(agent) == 0
        # Offline: its session keeps the subscription, the request expires unanswered.
        timed_out = w.metric("edge_ingest_commands_timed_out_total", command="ping")
        r = w.post("site-cmd", "ping", timeout=1)
        assert r.status_code == 504, r.text
        assert w.metric("edge_ingest_commands_timed_out_total", command="ping") == timed_out + 1


def test_statuses_unknown_device_body_limits_and_a_device_that_was_never_connected(
    tmp_path: Path, broker: Mosquitto
) -> None:
    with world(tmp_path, broker) as w:
        assert w.post("nobody", "ping").status_code == 404
        w.seen("ghost")  # known to the ingest, but no session subscribes to its commands
        r = w.post("ghost", "ping", timeout=30)
        assert r.status_code == 504 and "not listening" in r.json()["detail"], r.text
        assert w.post("ghost", "ping", b"x" * (64 * 1024 + 1)).status_code == 413
        for bad in (b"[1]", b"not json", b"\xff\xfe", b"null"):
            r = w.post("ghost", "ping", bad)
            assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body"], (bad, r.text)
        assert w.post("ghost", "ping", timeout=0.5).status_code == 422
        assert w.post("ghost", "ping", timeout=61).status_code == 422
        assert w.post("ghost", "a+b").status_code == 422
        assert w.post("ghost", "ping", scope="devices:read").status_code == 403
        r = w.http.post(ROUTE.format("ghost", "ping"), headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401


def test_the_device_error_codes_map_to_409_and_422(tmp_path: Path, broker: Mosquitto) -> None:
    with world(tmp_path, broker) as w:
        w.seen("dev-1")
        device = FakeDevice(broker, "dev-1")
        try:
            with ThreadPoolExecutor(4) as pool:
                for i, (code, expected) in enumerate(
                    [("busy", 409), ("internal", 409), ("something_new", 409), ("bad_request", 422)]
                ):
                    call = pool.submit(w.post, "dev-1", "run-test", {"all": True})
                    device.received(i + 1)
                    device.answer(
                        i, {"command": "run-test", "ok": False, "error": {"code": code, "message": "m"}}
                    )
                    r = call.result(30)
                    assert r.status_code == expected, (code, r.text)
                    assert r.json()["error"] == {"code": code, "message": "m"}
        finally:
            device.close()


def test_too_many_pending_requests_get_429_and_the_waiting_ones_still_get_their_replies(
    tmp_path: Path, broker: Mosquitto
) -> None:
    with world(tmp_path, broker, max_pending=2) as w:
        w.seen("dev-1")
        device = FakeDevice(broker, "dev-1")
        try:
            with ThreadPoolExecutor(2) as pool:
                waiting = [pool.submit(w.post, "dev-1", "ping", timeout=60) for _ in range(2)]
                device.received(2)
                wait_for(lambda: w.metric("edge_ingest_commands_pending") == 2, 15, "two pending")
                r = w.post("dev-1", "ping")
                assert r.status_code == 429 and r.headers["Retry-After"], r.text
                assert len(device.received(2)) == 2, "the refused request was not sent"
                device.answer(0, pong("dev-1"))
                device.answer(1, pong("dev-1"))
                assert [f.result(30).status_code for f in waiting] == [200, 200]
            assert w.metric("edge_ingest_commands_failed_total", command="ping", reason="busy") == 1
            assert w.metric("edge_ingest_commands_sent_total", command="ping") == 2
        finally:
            device.close()


def test_the_broker_gone_fails_waiting_requests_at_once_and_new_ones_get_503(
    tmp_path: Path, broker: Mosquitto
) -> None:
    with world(tmp_path, broker) as w:
        w.seen("dev-1")
        device = FakeDevice(broker, "dev-1")
        try:
            with ThreadPoolExecutor(1) as pool:
                waiting = pool.submit(w.post, "dev-1", "ping", timeout=60)
                device.received(1)
                broker.stop()
                r = waiting.result(30)
                # 503, not the 504 of the 60 s timeout: failed when the connection went.
                assert r.status_code == 503 and "may or may not" in r.json()["detail"], r.text
            wait_for(lambda: not w.commands.connected(), 15, "the client to notice")
            r = w.post("dev-1", "ping")
            assert r.status_code == 503 and r.headers["Retry-After"], r.text
        finally:
            device.client.loop_stop()
        broker.start()
        wait_for(w.commands.connected, 30, "the command client back")
        device = FakeDevice(broker, "dev-1")
        try:
            with ThreadPoolExecutor(1) as pool:
                call = pool.submit(w.post, "dev-1", "ping")
                device.received(1)
                device.answer(0, pong("dev-1"))
                assert call.result(30).status_code == 200
                # The request that failed with the connection was not sent again on the new one.
                assert len(device.requests) == 1
        finally:
            device.close()


def test_hostile_replies_are_dropped_or_refused_and_never_stop_the_client(
    tmp_path: Path, broker: Mosquitto
) -> None:
    client_id = commands_client_id(CONSUMER_ID)
    with world(tmp_path, broker) as w:
        w.seen("dev-1")
        device = FakeDevice(broker, "dev-1")
        dropped: Callable[[str], float] = lambda reason: w.metric(  # noqa: E731
            "edge_ingest_command_replies_dropped_total", reason=reason
        )
        try:
            with ThreadPoolExecutor(1) as pool:
                call: Future[Response] = pool.submit(w.post, "dev-1", "ping")
                ((topic, payload, response, correlation),) = device.received(1)
                assert topic == "devices/dev-1/commands/ping" and payload == b"{}"
                assert response is not None and correlation is not None
                assert response == f"devices/dev-1/responses/{client_id}/{correlation.decode()}"
                good = json.dumps(pong("dev-1")).encode()
                device.send(response, good, b"someone else's")
                device.send(response, good, None)
                # The request's correlation data, from another device's tree.
                device.send(f"devices/dev-2/responses/{client_id}/{correlation.decode()}", good, correlation)
                device.send(f"devices/dev-1/responses/{client_id}/other-id", good, correlation)
                wait_for(lambda: dropped("mismatch") == 2, 15, "the mismatches counted")
                assert (dropped("unknown"), dropped("no_correlation")) == (1, 1)
                device.send(response, b"\xff\x00 not json", correlation)
                r = call.result(30)
                assert r.status_code == 502 and "not the protocol's" in r.json()["detail"], r.text

            hostile = [
                b"[" * 100_000 + b"]" * 100_000,
                b'{"command": "ping", "ok": true}',
                b'{"command": "ping", "ok": false, "error": "no"}',
                b'{"command": "run-test", "ok": true, "result": {}}',
                b"x" * (4 * 2**20 + 1),
            ]
            with ThreadPoolExecutor(1) as pool:
                for i, garbage in enumerate(hostile, start=2):
                    call = pool.submit(w.post, "dev-1", "ping")
                    device.received(i)
                    _t, _p, response, correlation = device.requests[i - 1]
                    assert response is not None
                    device.send(response, garbage, correlation)
                    assert call.result(30).status_code == 502, garbage[:40]
                call = pool.submit(w.post, "dev-1", "ping")
                device.received(len(hostile) + 2)
                device.answer(len(hostile) + 1, pong("dev-1"))
                assert call.result(30).status_code == 200, "the client still works"
            assert w.metric("edge_ingest_commands_replied_total", command="ping", outcome="bad_reply") == 6
            assert w.commands.connected()
        finally:
            device.close()


def test_replies_reach_the_process_that_asked_and_another_process_ignores_them(
    tmp_path: Path, broker: Mosquitto
) -> None:
    base = settings_for(tmp_path, broker).mqtt
    device = FakeDevice(broker, "dev-1")
    try:
        with (
            command_client(base, "ingest@a-commands") as a,
            command_client(base, "ingest@b-commands") as b,
            ThreadPoolExecutor(2) as pool,
        ):
            asked_a = pool.submit(a.request, "dev-1", "ping", {}, 30)
            device.received(1)
            asked_b = pool.submit(b.request, "dev-1", "ping", {}, 30)
            requests = device.received(2)
            assert requests[0][2] is not None and "/ingest@a-commands/" in requests[0][2]
            assert requests[1][2] is not None and "/ingest@b-commands/" in requests[1][2]
            # B's request refused on the topic every process reads: only B takes it.
            refusal = {
                "command": "ping",
                "ok": False,
                "error": {"code": "response_topic_rejected", "message": "m"},
            }
            device.send("devices/dev-1/responses", json.dumps(refusal).encode(), requests[1][3])
            reply_b = asked_b.result(30)
            assert (
                not reply_b.ok
                and reply_b.error is not None
                and reply_b.error.code == "response_topic_rejected"
            )
            device.answer(0, pong("dev-1"))
            assert asked_a.result(30).ok
        dropped = a.metrics.registry.get_sample_value(
            "edge_ingest_command_replies_dropped_total", {"reason": "unknown"}
        )
        assert dropped == 1, "A saw B's refusal and let it be"
    finally:
        device.close()


def test_through_the_auth_services_broker_mutual_tls_and_acl(tmp_path: Path) -> None:
    with auth_with_broker(tmp_path, f"sqlite:///{tmp_path / 'auth.db'}") as env:
        ingest = env.ingest()
        dev = env.enroll("site-tls")
        mqtt_settings = MQTTSettings(
            host="127.0.0.1",
            port=env.service_port,
            share_group=env.share_group(),
            tls={"ca_file": ingest.ca, "cert_file": ingest.cert, "key_file": ingest.key},  # type: ignore[arg-type]
            reconnect_max=0.5,
        )
        with (
            command_client(mqtt_settings, commands_client_id("ingest@test")) as client,
            env.peer(dev) as device,
        ):
            assert device.connect(), env.broker.log[-2000:]
            received: list[mqtt.MQTTMessage] = []
            device.client.on_message = lambda _c, _u, msg: received.append(msg)
            device.subscribe("devices/site-tls/commands/+")
            with ThreadPoolExecutor(1) as pool:
                call = pool.submit(client.request, "site-tls", "ping", {}, 30)
                wait_for(lambda: bool(received), 15, "the request at the device")
                props = received[0].properties
                reply = Properties(PacketTypes.PUBLISH)
                reply.CorrelationData = props.CorrelationData  # type: ignore[union-attr]
                device.client.publish(
                    props.ResponseTopic,
                    json.dumps(pong("site-tls")).encode(),
                    qos=1,
                    properties=reply,  # type: ignore[union-attr]
                )
                assert call.result(30).result == {"pong": True, "device_id": "site-tls"}

        # A client the ACL does not let write commands (a device's certificate, on the
        # device listener): the broker's PUBACK 0x87 is a 502, not a wait for the timeout.
        as_device = MQTTSettings(
            host="127.0.0.1",
            port=env.broker.port,
            share_group=env.share_group(),
            tls={"ca_file": dev.ca, "cert_file": dev.cert, "key_file": dev.key},  # type: ignore[arg-type]
            reconnect_max=0.5,
        )
        with command_client(as_device, "site-tls") as refused:
            with pytest.raises(CommandRefused, match="0x87"):
                refused.request("other-device", "ping", {}, 30)
            failed = refused.metrics.registry.get_sample_value(
                "edge_ingest_commands_failed_total", {"command": "ping", "reason": "refused"}
            )
            assert failed == 1


def test_the_client_refuses_what_the_protocol_would_refuse(tmp_path: Path, broker: Mosquitto) -> None:
    with command_client(settings_for(tmp_path, broker).mqtt, "ingest@x-commands") as client:
        from edge_cloud.ingest.errors import CommandTooLarge

        with pytest.raises(CommandTooLarge):
            client.request("dev-1", "ping", {"x": "é" * 40_000}, 5)
        for device_id, name in (("dev/1", "ping"), ("dev-1", "a/b"), ("dev-1", "#"), ("+", "ping")):
            with pytest.raises(ValueError):
                client.request(device_id, name, {}, 5)
    with pytest.raises(CommandUnavailable):
        client.request("dev-1", "ping", {}, 5)
    assert isinstance(CommandRefused("x"), CommandBadReply)


def test_a_puback_after_the_timeout_is_not_kept_for_a_later_request(
    tmp_path: Path, broker: Mosquitto
) -> None:
    """A broker that acknowledges a request only after its caller gave up: the late PUBACK
    goes to the finished request and is dropped, not kept as the "early" PUBACK of a
    request still to come (one per timed-out request, for ever; and paho's packet ids wrap
    at 65535, so a later request with the same id would take its reason code as its own)."""
    with command_client(settings_for(tmp_path, broker).mqtt, "ingest@x-commands") as client:
        assert broker.process is not None
        os.kill(broker.process.pid, signal.SIGSTOP)
        try:
            with pytest.raises(CommandTimeout, match="did not acknowledge"):
                client.request("dev-1", "ping", {}, 1)
        finally:
            os.kill(broker.process.pid, signal.SIGCONT)
        # PUBACKs come in order: once the next request has its own (0x10, nobody listens
        # to dev-1), the late one has been handled.
        with pytest.raises(CommandTimeout, match="not listening"):
            client.request("dev-1", "ping", {}, 10)
        assert client._early_acks == {}
        assert client._by_mid == {}
