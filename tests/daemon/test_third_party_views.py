"""What a third-party subscriber gets from a real ``edge-agent run``: batches and every
event kind valid under the published JSON Schema (checked by the ``jsonschema`` package),
the retained latest-value topic, and Home Assistant discovery, subscribed to the way
Home Assistant does.

One agent, run twice on the same outbox: first with no broker and a tiny size cap (so
it evicts and makes a ``gap`` event, as in an outage), then connected, with zlib batches,
``[mqtt] latest``, ``[homeassistant] enabled`` and a range test that fails with an alarm.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.outbox.stats import read_stats
from edge_protocol.json_schema import differences, schemas
from edge_protocol.wire import inflate
from tests.conftest import REPO, under_ci
from tests.daemon.agent_process import FAST_SENSORS, start_agent, stop_agent, wait_until
from tests.mosquitto import Mosquitto, free_port

try:
    import jsonschema
except ImportError:  # the dev extra has it; a skip elsewhere, a failure under CI
    if under_ci():
        raise
    pytest.skip("the schema test needs jsonschema (pip install -e '.[dev]')", allow_module_level=True)

DEVICE = "site-ha"
SCHEMA_DIR = REPO / "docs" / "schema"
KINDS = {"reading", "test_result", "alarm", "status", "gap"}

CONFIG = """
[device]
id = "{device}"
clock_check = "none"

[storage]
state_dir = "{state}"
max_bytes = "{cap}"

[mqtt]
host = "127.0.0.1"
port = {port}
reconnect_min = "0.2s"
reconnect_max = "0.5s"
compression = "zlib"
latest = true
latest_interval = "0.5s"

[homeassistant]
enabled = true

[metrics]
enabled = false

[[tests]]
name = "climate-range"
sensor = "climate"
kind = "range"
schedule = "1s"
alarm = true
limits = {{ temperature_c = [-40, 0] }}
"""


@dataclass
class Recorder:
    """Every message on the device's tree and Home Assistant's, with its user properties."""

    broker: Mosquitto
    topics: tuple[str, ...]
    messages: list[tuple[str, bytes, dict[str, str], bool]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect("127.0.0.1", self.broker.port)
        self.client.loop_start()
        self.client.subscribe([(t, 1) for t in self.topics])
        assert self._subscribed.wait(10)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        props = dict(getattr(msg.properties, "UserProperty", None) or [])
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), props, bool(msg.retain)))

    def on(self, pattern: str) -> list[tuple[str, bytes, dict[str, str], bool]]:
        with self._lock:
            return [m for m in self.messages if re.fullmatch(pattern, m[0])]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@dataclass
class Run:
    broker: Mosquitto
    live: Recorder
    started_connected: str
    """``ts`` of the ``started`` status event of the connected run."""

    @property
    def batches(self) -> list[dict[str, Any]]:
        return [
            json.loads(inflate(p, props.get("content-encoding")))
            for _t, p, props, _r in self.live.on(f"devices/{DEVICE}/events")
        ]


def _config(directory: Path, port: int, cap: str) -> Path:
    path = directory / "edge-agent.toml"
    text = CONFIG.format(device=DEVICE, state=directory / "state", cap=cap, port=port)
    path.write_text(text + FAST_SENSORS.format(interval="100ms"))
    return path


def _events(run: Run) -> list[dict[str, Any]]:
    return [e for b in run.batches for e in b["events"]]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    directory = tmp_path_factory.mktemp("views")
    log = directory / "agent.log"
    # An outage from the start: the cap evicts the oldest readings and a gap event says so.
    agent = start_agent(_config(directory, free_port(), "12KiB"), log)
    try:
        assert wait_until(lambda: _evicted(directory / "state" / "outbox.db") > 0, 30), log.read_text()[
            -2000:
        ]
    finally:
        assert stop_agent(agent) == 0
    with Mosquitto(directory / "broker") as broker:
        live = Recorder(broker, (f"devices/{DEVICE}/#", "homeassistant/#"))
        agent = start_agent(_config(directory, broker.port, "64MiB"), log)
        try:
            run = Run(broker, live, "")

            def seen() -> set[str]:
                return {e["kind"] for e in _events(run)}

            assert wait_until(lambda: seen() >= KINDS and len(live.on(r".*/state")) >= 4, 30), seen()
            started = [
                e["ts"] for e in _events(run) if e["kind"] == "status" and e["data"].get("state") == "started"
            ]
            run.started_connected = max(started)
            yield run
        finally:
            assert stop_agent(agent) == 0
            live.close()


def _evicted(db: Path) -> int:
    try:
        return read_stats(db).evicted_total
    except Exception:
        return 0


def test_the_published_schema_is_generated_from_the_protocol_as_it_is_now() -> None:
    assert differences(SCHEMA_DIR) == [], "run: python -m edge_protocol.json_schema docs/schema"


def test_every_batch_and_event_the_daemon_sent_validates_under_the_published_schema(run: Run) -> None:
    published = {
        p.name.removesuffix(".schema.json"): json.loads(p.read_text()) for p in SCHEMA_DIR.glob("*.json")
    }
    assert published == schemas()
    validator = jsonschema.Draft202012Validator
    batch = validator(published["batch"])
    by_kind = {kind: validator(published[f"event-{kind}"]) for kind in KINDS}
    for message in run.batches:
        batch.validate(message)
    counts = {kind: 0 for kind in KINDS}
    for event in _events(run):
        by_kind[event["kind"]].validate(event)
        counts[event["kind"]] += 1
    assert all(counts.values()), counts
    # The schema refuses what the protocol refuses: an unknown key, a wrong kind's data.
    reading = next(e for e in _events(run) if e["kind"] == "reading")
    assert not batch.is_valid({"schema": 1, "device_id": DEVICE, "events": [{**reading, "extra": 1}]})
    assert not by_kind["reading"].is_valid({**reading, "data": {"temperature_c": "warm"}})
    assert not by_kind["gap"].is_valid({**reading, "kind": "gap", "data": {"reason": "tired"}})


def test_latest_values_are_retained_plain_json_beside_the_outbox_and_rate_limited(run: Run) -> None:
    validator = jsonschema.Draft202012Validator(
        json.loads((SCHEMA_DIR / "latest-value.schema.json").read_text())
    )
    states = run.live.on(rf"devices/{DEVICE}/sensors/[^/]+/state")
    readings = [e for e in _events(run) if e["kind"] == "reading"]
    for sensor in ("climate", "cabinet"):
        mine = [json.loads(p) for t, p, props, _r in states if t.endswith(f"/{sensor}/state")]
        assert mine and all(not props for t, _p, props, _r in states)  # not compressed
        for state in mine:
            validator.validate(state)
            assert state["sensor"] == sensor and set(state["units"]) == set(state["values"])
        # Rate-limited: fewer state messages than readings of the sensor.
        assert len(mine) < sum(1 for r in readings if r["sensor"] == sensor)
        # Never through the outbox: nothing from the run without a broker (its readings
        # came later, in batches).
        assert all(s["ts"] >= run.started_connected for s in mine)
    assert any(r["ts"] < run.started_connected for r in readings)
    climate = json.loads(next(p for t, p, _pr, _r in reversed(states) if t.endswith("/climate/state")))
    assert climate["units"]["temperature_c"] == "°C" and climate["units"]["pressure_pa"] == "Pa"
    # Retained: a subscriber that comes later gets each sensor's latest at once.
    late = Recorder(run.broker, (f"devices/{DEVICE}/sensors/+/state",))
    try:
        # The first message of each sensor is the retained one (live ones follow, the agent
        # still running: counting messages raced them on a loaded machine).
        assert wait_until(lambda: len({t for t, *_x in late.on(".*")}) == 2, 10)
        firsts = {}
        for topic, _p, _x, retained in late.on(".*"):
            firsts.setdefault(topic, retained)
        assert all(firsts.values()), firsts
    finally:
        late.close()


# Home Assistant's MQTT sensor discovery, as its documentation describes it: the topic
# format, the keys a sensor takes, and the units its device classes accept.
HA_TOPIC = re.compile(r"^homeassistant/sensor/(?:[a-zA-Z0-9_-]+/)?[a-zA-Z0-9_-]+/config$")
HA_SENSOR_KEYS = {
    "name", "unique_id", "object_id", "state_topic", "value_template", "unit_of_measurement",
    "device_class", "state_class", "availability_topic", "availability_template",
    "payload_available", "payload_not_available", "device", "origin", "json_attributes_topic",
    "json_attributes_template", "expire_after", "force_update", "icon", "qos", "suggested_display_precision",
}  # fmt: skip
HA_DEVICE_KEYS = {"identifiers", "name", "manufacturer", "model", "sw_version", "hw_version", "connections"}
HA_UNITS = {
    "temperature": {"°C", "°F", "K"},
    "humidity": {"%"},
    "pressure": {"Pa", "hPa", "kPa", "bar", "cbar", "mbar", "mmHg", "inHg", "psi"},
    "pm25": {"µg/m³"},
    "pm10": {"µg/m³"},
    "pm1": {"µg/m³"},
    "voltage": {"V", "mV", "µV", "kV", "MV"},
    "distance": {"km", "m", "cm", "mm", "mi", "yd", "in", "ft"},
    "speed": {"m/s", "km/h", "mph", "ft/s", "kn"},
    "duration": {"d", "h", "min", "s", "ms"},
    "current": {"A", "mA"},
    "power": {"W", "kW", "MW"},
    "apparent_power": {"VA"},
    "reactive_power": {"var"},
    "energy": {"Wh", "kWh", "MWh"},
    "frequency": {"Hz", "kHz", "MHz"},
}
# Home Assistant refuses an energy sensor whose state class is "measurement": a meter's
# register is a total.
HA_STATE_CLASSES = {"energy": {"total", "total_increasing"}}


def test_home_assistant_discovers_every_sensor_quantity_with_state_and_availability(run: Run) -> None:
    # Subscribe like Home Assistant: homeassistant/# on start, the retained configs arrive,
    # then the state and availability topics each config names.
    ha = Recorder(run.broker, ("homeassistant/#",))
    try:
        readings = [e for e in _events(run) if e["kind"] == "reading"]
        quantities = {(r["sensor"], q) for r in readings for q in r["data"] if q != "cal"}
        assert wait_until(lambda: len(ha.on(".*")) == len(quantities), 10), (ha.on(".*"), quantities)
        configs = {t: json.loads(p) for t, p, _props, retained in ha.on(".*") if retained}
        assert len(configs) == len(quantities)
        templates = jinja2.Environment()
        wanted = {c["state_topic"] for c in configs.values()} | {f"devices/{DEVICE}/status"}
        followed = Recorder(run.broker, tuple(wanted))
        try:
            # Each topic's retained message first; live updates may follow (order, not timing).
            assert wait_until(lambda: {t for t, *_ in followed.on(".*")} >= wanted, 20)
            retained: dict[str, Any] = {}
            for t, p, _props, _r in followed.on(".*"):
                retained.setdefault(t, json.loads(p))
        finally:
            followed.close()
        seen = set()
        for topic, config in configs.items():
            assert HA_TOPIC.match(topic), topic
            assert set(config) <= HA_SENSOR_KEYS and {"state_topic", "unique_id"} <= set(config), config
            assert set(config["device"]) <= HA_DEVICE_KEYS and config["state_class"] == "measurement"
            if "device_class" in config:
                assert config["unit_of_measurement"] in HA_UNITS[config["device_class"]], config
            value = templates.from_string(config["value_template"]).render(
                value_json=retained[config["state_topic"]]
            )
            float(value)  # a number, the sensor's state
            availability = templates.from_string(config["availability_template"]).render(
                value_json=retained[config["availability_topic"]]
            )
            assert availability == config["payload_available"]
            will = templates.from_string(config["availability_template"]).render(
                value_json={"state": "offline"}
            )
            assert will == config["payload_not_available"]
            seen.add(config["unique_id"])
        assert len(seen) == len(configs)  # one entity each
        temperature = configs[f"homeassistant/sensor/{DEVICE}/climate_temperature_c/config"]
        assert (temperature["device_class"], temperature["unit_of_measurement"]) == ("temperature", "°C")
    finally:
        ha.close()


def test_home_assistant_gets_an_energy_meters_units_classes_and_a_total_for_its_energy() -> None:
    """The quantities of the shipped SDM120 profile (a Modbus map declares no units)."""
    from edge_agent.uplink.homeassistant import discovery_config

    configs = {
        q: discovery_config(DEVICE, "meter", q)
        for q in ("voltage_v", "current_a", "active_power_w", "frequency_hz", "total_active_energy_kwh")
    }
    for config in configs.values():
        assert config["unit_of_measurement"] in HA_UNITS[config["device_class"]], config
        assert config["state_class"] in HA_STATE_CLASSES.get(config["device_class"], {"measurement"}), config
    assert [c["unit_of_measurement"] for c in configs.values()] == ["V", "A", "W", "Hz", "kWh"]
    assert configs["total_active_energy_kwh"]["state_class"] == "total_increasing"
    ratio = discovery_config(DEVICE, "meter", "power_factor_ratio")
    assert "unit_of_measurement" not in ratio and ratio["state_class"] == "measurement"


def test_the_example_subscriber_prints_readings_from_zlib_batches(run: Run) -> None:
    example = REPO / "examples" / "print_readings.py"
    done = subprocess.run(
        [sys.executable, str(example), DEVICE, "127.0.0.1", str(run.broker.port), "3"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3, lines
    assert all(re.match(r"^\S+Z (climate|cabinet): \w+=-?[0-9.]+", line) for line in lines), lines


def test_a_drop_announcement_validates_under_the_published_schema() -> None:
    # The gap a device sends for events it could not commit (reason not_committed, no seqs,
    # the count by why) is a gap a third-party validator must take, not refuse as unknown.
    from edge_agent.events import NewEvent
    from edge_agent.outbox.drops import DropLedger
    from edge_agent.outbox.errors import OutboxLockedError

    ledger = DropLedger()
    for _ in range(3):
        ledger.dropped(NewEvent.now("reading", "climate", {"t_c": 1.0}, boot="b"), OutboxLockedError("busy"))
    data = ledger.announcement()
    assert data is not None and data["reason"] == "not_committed" and data["count"] == 3
    gap_data = jsonschema.Draft202012Validator(json.loads((SCHEMA_DIR / "gap-data.schema.json").read_text()))
    gap_data.validate(data)
    assert not gap_data.is_valid({**data, "dropped": {"outbox_busy": "three"}})
