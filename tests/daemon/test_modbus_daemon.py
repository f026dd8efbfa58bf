"""End to end: the daemon reads two simulated Modbus slaves sharing one RS-485 line (a pty
served by this test process) and forwards their readings to a real Mosquitto; a third
unit id on the same line that never answers fails on its own, by the circuit breaker."""

from __future__ import annotations

import struct
from pathlib import Path

from edge_drivers.sim.modbus import SimulatedModbusBus, SimulatedSlave
from tests.daemon.agent_process import Subscriber, start_agent, stop_agent, wait_until
from tests.mosquitto import Mosquitto


def _config(directory: Path, broker: Mosquitto, port: str) -> Path:
    path = directory / "edge-agent.toml"
    sensor = """
[[sensors]]
name = "{name}"
driver = "modbus"
port = "{port}"
baudrate = 9600
interval = "100ms"
options = {{ unit = {unit}, profile = "{profile}", timeout_s = 0.1 }}
"""
    path.write_text(
        f"""
[device]
id = "modbus-test"
clock_check = "none"

[storage]
state_dir = "{directory / "state"}"

[mqtt]
host = "127.0.0.1"
port = {broker.port}
reconnect_min = "0.2s"

[metrics]
listen = "127.0.0.1:0"

[health]
open_after = 2
probe_after = "60s"
"""
        + sensor.format(name="meter", port=port, unit=1, profile="sdm120")
        + sensor.format(name="pump", port=port, unit=2, profile="transmitter_4_20ma")
        + sensor.format(name="ghost", port=port, unit=9, profile="transmitter_4_20ma")
    )
    return path


def _meter() -> SimulatedSlave:
    slave = SimulatedSlave(1)
    for address, value in (
        (0x0000, 230.5),
        (0x0006, 2.0),
        (0x000C, 438.0),
        (0x001E, 0.95),
        (0x0046, 50.0),
        (0x0156, 7.25),
    ):
        slave.set("input", address, value, "float32")
    return slave


def test_two_slaves_on_one_line_reach_the_broker_and_a_silent_one_fails_alone(tmp_path: Path) -> None:
    pump = SimulatedSlave(
        2, {"holding": {3: 2, 4: struct.unpack(">H", struct.pack(">h", -125))[0], 5: 0, 6: 10000}}
    )
    with SimulatedModbusBus([_meter(), pump]) as line, Mosquitto(tmp_path / "broker") as broker:
        sub = Subscriber(broker, "modbus-test")
        log = tmp_path / "agent.log"
        agent = start_agent(_config(tmp_path, broker, line.port), log)

        def readings(name: str) -> list[dict[str, float]]:
            return [e["data"] for e in sub.of_kind("reading") if e["sensor"] == name]

        def ghost_failed() -> bool:
            return any(
                e["sensor"] == "ghost"
                and e["data"].get("event") == "sensor_health"
                and e["data"]["state"] == "failed"
                for e in sub.of_kind("status")
            )

        try:
            ok = wait_until(
                lambda: len(readings("meter")) >= 3 and len(readings("pump")) >= 3 and ghost_failed(), 20
            )
        finally:
            code = stop_agent(agent)
            sub.close()
        assert ok, log.read_text()[-3000:]
    assert code == 0
    assert readings("meter")[0] == {
        "voltage_v": 230.5,
        "current_a": 2.0,
        "active_power_w": 438.0,
        "power_factor_ratio": 0.95,  # the shortest decimal of the float32, not its double
        "frequency_hz": 50.0,
        "total_active_energy_kwh": 7.25,
    }
    assert readings("pump")[0] == {
        "decimal_places_count": 2.0,
        "pressure_kpa": -1.25,
        "range_zero_kpa": 0.0,
        "range_full_kpa": 100.0,
    }
    assert readings("ghost") == []
    # The breaker stopped asking the absent unit: 2 tries (open_after), one request each.
    assert line.frames_in - len(line.slaves[1].requests) - len(line.slaves[2].requests) == 2
    assert "no answer within 0.1 s" in log.read_text()
