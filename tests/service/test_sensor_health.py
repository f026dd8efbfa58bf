"""Per-sensor health: the state machine, and a real driver on the simulated bus whose
breaker opens, probes and closes."""

from __future__ import annotations

import asyncio
from typing import Any

from edge_agent.events import NewEvent
from edge_agent.sampling.clock_sync import ClockWatch
from edge_agent.sampling.hardware import Hardware
from edge_agent.sampling.health import BreakerPolicy, HealthGuard, SensorHealth
from edge_agent.sampling.registry import load_registry
from edge_agent.sampling.sampler import SensorLoop
from edge_agent.settings import SensorSettings
from edge_drivers.sim.i2c_bus import BusFault
from tests.service.helpers import until


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_state_machine_ok_degraded_failed_recovering_ok() -> None:
    clock = Clock()
    h = SensorHealth(BreakerPolicy(open_after=3, probe_after=10, probe_max=25, close_after=2), clock=clock)
    assert h.failed("nack").state == "degraded"  # type: ignore[union-attr]
    assert h.failed("nack") is None and h.state == "degraded"
    change = h.failed("nack")
    assert change is not None and (change.previous, change.state) == ("degraded", "failed")
    assert not h.probe_due() and h.seconds_to_probe() == 10
    clock.now = 10
    assert h.probe_due()
    h.failed("still nack")  # the probe failed: open again, twice as long
    assert h.state == "failed" and h.seconds_to_probe() == 20
    clock.now = 30
    h.failed("nack")
    assert h.seconds_to_probe() == 25, "capped at probe_max"
    clock.now = 55
    assert h.succeeded().state == "recovering"  # type: ignore[union-attr]
    assert h.succeeded().state == "ok"  # type: ignore[union-attr]
    assert h.opens == 0 and h.opened_total == 3
    h.failed("x")
    assert h.succeeded().state == "ok"  # type: ignore[union-attr]


def test_an_error_while_recovering_opens_the_breaker_again() -> None:
    clock = Clock()
    h = SensorHealth(BreakerPolicy(open_after=1, probe_after=5, close_after=3), clock=clock)
    assert h.failed("x").state == "failed"  # type: ignore[union-attr]
    clock.now = 5
    h.succeeded()
    assert h.state == "recovering"
    assert h.failed("again").state == "failed"  # type: ignore[union-attr]
    assert h.seconds_to_probe() == 10


def test_may_open_false_holds_the_breaker_for_one_more_read() -> None:
    h = SensorHealth(BreakerPolicy(open_after=2))
    h.failed("a")
    assert h.about_to_open()
    h.failed("b", may_open=False)
    assert h.state == "degraded"
    assert h.failed("c").state == "failed"  # type: ignore[union-attr]


def test_failing_i2c_sensor_is_rebuilt_then_backed_off_then_recovers() -> None:
    registry = load_registry()
    hardware = Hardware(registry, seed=1)
    config = SensorSettings(name="climate", driver="bme280", bus="sim", address=0x76)
    announced: list[dict[str, Any]] = []
    policy = BreakerPolicy(open_after=3, probe_after=0.3, probe_max=0.6, close_after=2)

    async def announce(sensor: str, data: dict[str, Any]) -> None:
        announced.append(data)

    async def emit(event: NewEvent) -> None:
        pass

    async def main() -> None:
        guard = HealthGuard(
            "climate", SensorHealth(policy), announce=announce, rebuild=lambda: hardware.open_sensor(config)
        )
        loop = SensorLoop(
            "climate",
            hardware.open_sensor(config),
            interval=0.02,
            timeout=2.0,
            emit=emit,
            boot="b",
            clock=ClockWatch("none"),
            guard=guard,
        )
        task = asyncio.create_task(loop.run())
        await until(lambda: loop.counters.reads >= 3)
        hardware.sim_bus.inject(0x76, BusFault(count=None))  # the chip stops answering
        await until(lambda: guard.health.state == "failed")
        assert guard.rebuilds >= 1 and guard.rebuild_failures >= 1, "a rebuild is tried before giving up"
        transactions = hardware.sim_bus.transactions
        skipped = loop.counters.skipped_open
        await until(lambda: loop.counters.skipped_open >= skipped + 5)
        # While open, only the probes touch the bus (each: a rebuild's chip-id read).
        assert hardware.sim_bus.transactions - transactions <= 3
        hardware.sim_bus.clear_faults()  # it comes back
        await until(lambda: guard.health.state == "ok")
        reads = loop.counters.reads
        await until(lambda: loop.counters.reads >= reads + 3)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    try:
        asyncio.run(main())
    finally:
        hardware.close()
    states = [a["state"] for a in announced]
    assert states[:2] == ["degraded", "failed"] and states[-2:] == ["recovering", "ok"], states
    failed = next(a for a in announced if a["state"] == "failed")
    assert (
        failed["event"] == "sensor_health" and "BusError" in failed["reason"] and failed["next_probe_s"] > 0
    )


def test_a_hung_driver_opens_the_breaker_and_recovers_when_it_returns() -> None:
    import threading

    class Hung:
        def __init__(self) -> None:
            self.release = threading.Event()
            self.calls = 0

        def read(self) -> dict[str, float]:
            self.calls += 1
            if self.calls == 3:  # the third read hangs until released
                self.release.wait(30)
            return {"x_total": float(self.calls)}

    driver = Hung()
    announced: list[str] = []

    async def announce(sensor: str, data: dict[str, Any]) -> None:
        announced.append(data["state"])

    async def emit(event: NewEvent) -> None:
        pass

    async def main() -> None:
        policy = BreakerPolicy(open_after=3, probe_after=0.2, probe_max=0.2, close_after=2)
        guard = HealthGuard("s", SensorHealth(policy), announce=announce)  # serial-like: nothing to rebuild
        loop = SensorLoop(
            "s",
            driver,
            interval=0.02,
            timeout=0.1,
            emit=emit,
            boot="b",
            clock=ClockWatch("none"),
            guard=guard,
        )
        task = asyncio.create_task(loop.run())
        await until(lambda: guard.health.state == "failed")
        assert loop.counters.timeouts == 1 and loop.counters.errors_by_kind["busy"] >= 2
        driver.release.set()  # the call comes back at last
        await until(lambda: guard.health.state == "ok")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    assert announced == ["degraded", "failed", "recovering", "ok"]
