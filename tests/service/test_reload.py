"""SIGHUP to a real ``edge-agent run``: a valid config changes the sensors without a
restart and without losing an event; an invalid one is refused and the old one runs on."""

from __future__ import annotations

import signal
from pathlib import Path

from edge_agent.service.status_server import StatusUnavailable, read_status, status_socket
from tests.daemon.agent_process import Subscriber, start_agent, stop_agent, write_config
from tests.daemon.test_crash_recovery import wait_until
from tests.mosquitto import Mosquitto
from tests.service.helpers import NotifyListener

ANALOG = """
[[sensors]]
name = "analog"
driver = "ads1115"
bus = "sim"
address = 0x48
interval = "100ms"
"""


def sensors(state: Path) -> dict[str, dict]:  # type: ignore[type-arg]
    try:
        return {s["name"]: s for s in read_status(status_socket(state))["sensors"]}
    except StatusUnavailable:
        return {}


def test_sighup_applies_a_valid_config_and_refuses_an_invalid_one(tmp_path: Path) -> None:
    state = tmp_path / "state"
    listener = NotifyListener(tmp_path / "notify.sock")
    with Mosquitto(tmp_path / "broker") as broker:
        sub = Subscriber(broker, "crash-test")
        config = write_config(tmp_path, broker, interval="100ms")
        original = config.read_text()
        log = tmp_path / "agent.log"
        agent = start_agent(config, log, extra_env={"NOTIFY_SOCKET": listener.env_value})
        try:

            def running() -> list[dict]:  # type: ignore[type-arg]
                return list(sensors(state).values())

            assert wait_until(lambda: len(running()) == 2 and all(s["reads"] >= 3 for s in running()), 30), (
                log.read_text()
            )
            # cabinet removed, climate slowed down, analog added, and an MQTT change.
            head, _, rest = original.partition("[[sensors]]")
            climate = "[[sensors]]" + rest.split("[[sensors]]")[0]
            config.write_text(
                head.replace('reconnect_max = "1s"', 'reconnect_max = "2s"')
                + climate.replace('"100ms"', '"200ms"')
                + ANALOG
            )
            agent.send_signal(signal.SIGHUP)
            assert wait_until(lambda: set(sensors(state)) == {"climate", "analog"}, 20), log.read_text()[
                -3000:
            ]
            assert wait_until(lambda: sensors(state)["analog"]["reads"] >= 3, 20)
            snap = read_status(status_socket(state))
            assert snap["sensors"][0]["interval_s"] == 0.2
            assert snap["reloads"]["needs_restart"] == ["mqtt"]

            config.write_text(config.read_text().replace("address = 0x48", "adress = 0x48"))
            agent.send_signal(signal.SIGHUP)
            assert wait_until(lambda: "reload rejected" in log.read_text(), 20), log.read_text()[-3000:]
            reads = sensors(state)["analog"]["reads"]
            assert wait_until(lambda: sensors(state)["analog"]["reads"] >= reads + 3, 20), (
                "the old config runs on"
            )
            snap = read_status(status_socket(state))
            assert snap["reloads"]["rejected"] == 1 and set(sensors(state)) == {"climate", "analog"}
        finally:
            code = stop_agent(agent)
            listener.close()
        assert code == 0, log.read_text()[-3000:]
        assert wait_until(lambda: any(e["sensor"] == "analog" for e in sub.events), 10)
        seqs = sub.seqs()
        sub.close()

    text = log.read_text()
    rejected = [line for line in text.splitlines() if "reload rejected" in line]
    assert len(rejected) == 1 and "adress" in rejected[0] and "did you mean 'address'" in rejected[0]
    applied = next(line for line in text.splitlines() if "reload applied" in line)
    assert "added analog" in applied and "removed cabinet" in applied and "changed climate" in applied
    assert "not applied until a restart: mqtt" in applied
    assert seqs == set(range(1, max(seqs) + 1)), (
        "every committed event arrived: nothing lost over the reloads"
    )
    lifecycle = [w for w in listener.sequence() if w != "WATCHDOG"]
    assert lifecycle == ["READY", "RELOADING", "READY", "RELOADING", "READY", "STOPPING"]
    results = [e["data"]["result"] for e in sub.events if e["data"].get("event") == "config_reload"]
    assert results == ["applied", "rejected"]
