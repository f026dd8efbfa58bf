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


def test_not_ready_is_tolerated_for_not_ready_max_then_counts_as_errors() -> None:
    clock = Clock()
    h = SensorHealth(BreakerPolicy(open_after=2, not_ready_max=30), clock=clock)
    for t in (0, 10, 29):
        clock.now = t
        assert h.not_ready("warming up") is None and h.state == "ok" and h.consecutive_errors == 0
    clock.now = 30
    assert h.not_ready("warming up").state == "degraded"  # type: ignore[union-attr]
    assert h.not_ready("warming up").state == "failed"  # type: ignore[union-attr]
    assert h.reason == "not ready for 30 s: warming up"
    h2 = SensorHealth(BreakerPolicy(not_ready_max=30), clock=clock)
    h2.not_ready("warming up")
    clock.now = 100
    h2.succeeded()  # a good reading ends the run
    assert h2.not_ready("reset") is None and h2.state == "ok"


def sample(
    name: str, driver: Any, times: int, *, between: Any = None
) -> tuple[SensorLoop, list[str], list[NewEvent]]:
    """``times`` samples of ``driver`` through a SensorLoop and a HealthGuard that opens at
    the first error; ``between(i)`` runs before sample ``i``.  The health states announced
    and the readings emitted."""
    announced: list[str] = []
    readings: list[NewEvent] = []

    async def announce(sensor: str, data: dict[str, Any]) -> None:
        announced.append(data["state"])

    async def emit(event: NewEvent) -> None:
        readings.append(event)

    async def main() -> SensorLoop:
        guard = HealthGuard(name, SensorHealth(BreakerPolicy(open_after=1)), announce=announce)
        loop = SensorLoop(
            name,
            driver,
            interval=0.01,
            timeout=5.0,
            emit=emit,
            boot="b",
            clock=ClockWatch("none"),
            guard=guard,
        )
        for i in range(times):
            if between is not None:
                between(i)
            await loop.sample_once()
        return loop

    return asyncio.run(main()), announced, readings


def test_a_warming_up_pms5003_gives_no_readings_and_no_health_change() -> None:
    from edge_drivers.clock import ManualClock
    from edge_drivers.pms5003 import PMS5003
    from edge_drivers.sim.pms5003 import SimulatedPMS5003
    from edge_drivers.sim.serial_port import SimulatedSerial

    manual = ManualClock()
    port = SimulatedSerial(SimulatedPMS5003(clock=manual, seed=4, zero_frames=3), clock=manual, seed=4)
    loop, announced, readings = sample("dust", PMS5003(port, clock=manual), 5)
    # Three all-zero frames (the old driver: three readings of PM2.5 = 0), then values.
    assert (loop.counters.not_ready, loop.counters.errors, len(readings)) == (3, 0, 2)
    assert all(r.data["particles_0_3um_per_dl"] > 0 for r in readings)
    assert announced == []  # a warm-up is not a fault: no degraded, no failed


def test_a_bme280_reset_behind_the_daemons_back_gives_no_false_reading() -> None:
    hardware = Hardware(load_registry(), seed=2)
    driver = hardware.open_sensor(SensorSettings(name="climate", driver="bme280", bus="sim", address=0x76))
    chip = hardware.sim_bus.devices[0x76]
    resets = {
        1: lambda: chip.brown_out(),  # ctrl_hum lost: the old driver read 0x8000 as a humidity
        2: lambda: chip.brown_out(during_next_conversion=True),  # data left at their reset values
    }
    try:
        loop, announced, readings = sample(
            "climate", driver, 4, between=lambda i: resets.get(i, lambda: None)()
        )
        truth = chip.signals["relative_humidity_pct"].true_value()
    finally:
        hardware.close()
    assert (len(readings), loop.counters.not_ready, loop.counters.errors) == (2, 2, 0)
    assert loop.counters.errors_by_kind == {"ChipResetError": 2}
    assert abs(readings[-1].data["relative_humidity_pct"] - truth) < 1.0
    assert announced == []  # even with open_after = 1: a reset it recovered from is no failure


def test_a_receiver_without_fix_that_talks_in_vendor_sentences_is_healthy() -> None:
    from edge_drivers.clock import ManualClock
    from edge_drivers.nmea import NMEAGPS
    from edge_drivers.sim.nmea import SimulatedNMEA
    from edge_drivers.sim.serial_port import SimulatedSerial

    manual = ManualClock()
    receiver = SimulatedNMEA(clock=manual, seed=5, vendor="mediatek", no_fix_s=3.0)
    driver = NMEAGPS(SimulatedSerial(receiver, clock=manual, seed=5), clock=manual)
    loop, announced, readings = sample("gps", driver, 6)
    assert loop.counters.errors == 0 and announced == []
    no_fix = [r.data for r in readings if r.data["fix_quality"] == 0]
    fixed = [r.data for r in readings if r.data["fix_quality"] == 1]
    assert no_fix and all("latitude_deg" not in d for d in no_fix)  # 8960.000000,N is no position
    assert fixed and all("speed_mps" in d and "gps_time_unix_s" in d for d in fixed)
    assert driver.self_test().passed  # $SNRSTAT / $GYOACC are not rejects
