"""SIGHUP to a real ``edge-agent run``: a valid config changes the sensors and the broker
without a restart and without losing an event; an invalid one is refused and the old one
runs on."""

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
    with Mosquitto(tmp_path / "broker-a") as first, Mosquitto(tmp_path / "broker-b") as second:
        sub_a, sub_b = Subscriber(first, "crash-test"), Subscriber(second, "crash-test")
        config = write_config(tmp_path, first, interval="100ms")
        original = config.read_text()
        log = tmp_path / "agent.log"
        agent = start_agent(config, log, extra_env={"NOTIFY_SOCKET": listener.env_value})
        try:

            def running() -> list[dict]:  # type: ignore[type-arg]
                return list(sensors(state).values())

            assert wait_until(lambda: len(running()) == 2 and all(s["reads"] >= 3 for s in running()), 30), (
                log.read_text()
            )
            # cabinet removed, climate slowed down, analog added, and another broker.
            head, _, rest = original.partition("[[sensors]]")
            climate = "[[sensors]]" + rest.split("[[sensors]]")[0]
            config.write_text(
                head.replace(f"port = {first.port}", f"port = {second.port}")
                + climate.replace('"100ms"', '"200ms"')
                + ANALOG
            )
            agent.send_signal(signal.SIGHUP)
            assert wait_until(lambda: set(sensors(state)) == {"climate", "analog"}, 20), log.read_text()[
                -3000:
            ]
            assert wait_until(lambda: any(e["sensor"] == "analog" for e in sub_b.events), 20), (
                "on the new broker"
            )
            snap = read_status(status_socket(state))
            assert snap["sensors"][0]["interval_s"] == 0.2
            assert snap["reloads"]["needs_restart"] == [] and snap["uplink"]["broker"].endswith(
                str(second.port)
            )

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
        seqs = sub_a.seqs() | sub_b.seqs()
        events = sub_a.events + sub_b.events
        offline_on_a = [s["state"] for s in sub_a.statuses][-1:] == ["offline"]
        sub_a.close()
        sub_b.close()

    text = log.read_text()
    rejected = [line for line in text.splitlines() if "reload rejected" in line]
    assert len(rejected) == 1 and "adress" in rejected[0] and "did you mean 'address'" in rejected[0]
    applied = next(line for line in text.splitlines() if "reload applied" in line)
    assert "added analog" in applied and "removed cabinet" in applied and "changed climate" in applied
    assert seqs == set(range(1, max(seqs) + 1)), (
        "every committed event arrived: nothing lost over the reloads"
    )
    assert offline_on_a, "the old broker was told the device left it"
    lifecycle = [w for w in listener.sequence() if w != "WATCHDOG"]
    assert lifecycle == ["READY", "RELOADING", "READY", "RELOADING", "READY", "STOPPING"]
    reloads = [e["data"] for e in events if e["data"].get("event") == "config_reload"]
    assert [r["result"] for r in reloads] == ["applied", "rejected"] and reloads[0]["mqtt_reconnected"]
