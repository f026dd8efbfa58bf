"""A failing sensor opens its breaker while the others keep their rate; every change is a
``status`` event that reaches the broker, and shows in status and metrics."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from pathlib import Path

from edge_agent.daemon.main import Daemon
from edge_agent.sampling.hardware import Hardware
from edge_agent.sampling.registry import load_registry
from edge_agent.settings import load_settings
from edge_drivers.sim.i2c_bus import BusFault
from tests.daemon.agent_process import Subscriber, write_config
from tests.daemon.test_crash_recovery import wait_until
from tests.mosquitto import Mosquitto
from tests.service.helpers import samples_of, until


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return samples_of(response.read().decode())


def test_failing_sensor_is_isolated(tmp_path: Path) -> None:
    with Mosquitto(tmp_path / "broker") as broker:
        sub = Subscriber(broker, "crash-test")
        config = write_config(tmp_path, broker, interval="100ms")
        with config.open("a") as f:
            f.write('\n[health]\nopen_after = 3\nprobe_after = "1s"\nprobe_max = "2s"\n')
        registry = load_registry()
        hardware = Hardware(registry, seed=3)
        daemon = Daemon(load_settings(config, environ={}), registry=registry, hardware=hardware)
        result: dict[str, object] = {}

        def reads(name: str) -> int:
            loop = daemon.state.sensors.get(name)
            return loop.counters.reads if loop else 0

        async def rate(name: str, seconds: float) -> float:
            before, start = reads(name), time.monotonic()
            await asyncio.sleep(seconds)
            return (reads(name) - before) / (time.monotonic() - start)

        async def scenario() -> None:
            await until(lambda: reads("climate") >= 5 and reads("cabinet") >= 5)
            result["rate_before"] = await rate("cabinet", 2.0)
            hardware.sim_bus.inject(0x76, BusFault(count=None))  # climate's chip stops answering
            await until(lambda: daemon.snapshot()["sensors"][0]["health"] == "failed")
            climate_reads = reads("climate")
            result["rate_during"] = await rate("cabinet", 2.0)
            result["climate_reads_while_failed"] = reads("climate") - climate_reads
            url = daemon.snapshot()["metrics"]
            result["metrics"] = await asyncio.to_thread(scrape, url)
            result["snapshot"] = daemon.snapshot()
            hardware.sim_bus.clear_faults()
            await until(lambda: daemon.snapshot()["sensors"][0]["health"] == "ok")
            daemon.request_stop()

        async def main() -> None:
            async with asyncio.timeout(90):
                await asyncio.gather(daemon.run(), scenario())

        try:
            asyncio.run(main())
            assert wait_until(
                lambda: (
                    [e["data"]["state"] for e in sub.events if e["data"].get("event") == "sensor_health"][-1:]
                    == ["ok"]
                ),
                15,
            )
        finally:
            sub.close()

    assert result["climate_reads_while_failed"] == 0
    before, during = result["rate_before"], result["rate_during"]
    assert during >= 0.7 * before, f"cabinet slowed down from {before:.1f}/s to {during:.1f}/s"  # type: ignore[operator]
    health = [e for e in sub.events if e["kind"] == "status" and e["data"].get("event") == "sensor_health"]
    assert {e["sensor"] for e in health} == {"climate"}
    assert [e["data"]["state"] for e in health] == ["degraded", "failed", "recovering", "ok"]
    snap = result["snapshot"]
    climate = snap["sensors"][0]  # type: ignore[index]
    assert (
        climate["health"] == "failed" and "0x76" in climate["reason"] and climate["next_probe_s"] is not None
    )
    metrics = result["metrics"]
    assert metrics[("edge_agent_sensor_health", (("sensor", "climate"), ("state", "failed")))] == 1  # type: ignore[index]
    assert metrics[("edge_agent_sensor_health", (("sensor", "cabinet"), ("state", "ok")))] == 1  # type: ignore[index]
    assert metrics[("edge_agent_sensor_errors_total", (("kind", "BusError"), ("sensor", "climate")))] >= 3  # type: ignore[index]
    assert metrics[("edge_agent_sensor_breaker_opens_total", (("sensor", "climate"),))] >= 1  # type: ignore[index]
    assert (
        metrics[("edge_agent_sensor_health_changes_total", (("sensor", "climate"), ("state", "failed")))] >= 1
    )  # type: ignore[index]


def test_a_sensor_that_cannot_be_opened_is_announced_failed_then_ok(tmp_path: Path) -> None:
    """Absent at start (the commonest field failure): a ``sensor_health`` event and the
    metric say ``failed`` (as status does), and ``ok`` once the open retry succeeds."""
    with Mosquitto(tmp_path / "broker") as broker:
        sub = Subscriber(broker, "crash-test")
        config = write_config(tmp_path, broker, interval="200ms")
        registry = load_registry()
        hardware = Hardware(registry, seed=3)
        hardware.sim_bus.inject(0x76, BusFault(count=None))  # climate's chip does not answer the probe
        daemon = Daemon(load_settings(config, environ={}), registry=registry, hardware=hardware)
        seen: dict[str, object] = {}

        def health() -> str:
            return str(daemon.snapshot()["sensors"][0]["health"])

        async def scenario() -> None:
            await until(lambda: daemon.state.run_state == "running" and health() == "failed")
            seen["failed"] = await asyncio.to_thread(scrape, daemon.snapshot()["metrics"])
            hardware.sim_bus.clear_faults()
            await until(lambda: "climate" in daemon.state.sensors)  # the open retry (≤ 5 s)
            daemon.request_stop()

        async def main() -> None:
            async with asyncio.timeout(90):
                await asyncio.gather(daemon.run(), scenario())

        def announced() -> list[tuple[str, str]]:
            return [
                (e["data"]["previous"], e["data"]["state"])
                for e in sub.events
                if e["data"].get("event") == "sensor_health" and e["sensor"] == "climate"
            ]

        try:
            asyncio.run(main())
            assert wait_until(lambda: len(announced()) >= 2, 15), sub.events
        finally:
            sub.close()
    assert announced() == [("ok", "failed"), ("failed", "ok")]
    failed = next(e for e in sub.events if e["data"].get("state") == "failed")
    assert "0x76" in failed["data"]["reason"]
    metrics = seen["failed"]
    changes = ("edge_agent_sensor_health_changes_total", (("sensor", "climate"), ("state", "failed")))
    assert metrics[changes] == 1  # type: ignore[index]
    assert metrics[("edge_agent_sensor_health", (("sensor", "climate"), ("state", "failed")))] == 1  # type: ignore[index]
