"""The test kinds: how each gathers its evidence and what it concludes.

Each kind is an async ``run_<kind>(test, ctx) -> Verdict``: it takes fresh readings
through the sensor's :class:`~edge_agent.sensor_tests.runner.SensorPort` (the worker
thread the sampler uses, in turn with sampling) and hands them to a pure ``judge_<kind>``
function, which the unit tests exercise with plain numbers.  Readings are corrected by
the calibrations in effect, as the events are: a test judges what the cloud receives.

A kind raises :class:`CannotJudge` (or lets a driver error through) when it cannot
conclude; the runner makes that an ``error`` result, never a ``pass``.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from edge_agent.calibration.active import ActiveCalibrations
from edge_agent.calibration.store import CalibrationRecord
from edge_agent.errors import EdgeAgentError
from edge_agent.sensor_tests.config import (
    AgreementTest,
    CalibrationDueTest,
    NoiseTest,
    RangeTest,
    RateTest,
    SelfTest,
    StuckTest,
    TestSettings,
)
from edge_agent.sensor_tests.result import Verdict
from edge_drivers.api import SelfTestResult

T = TypeVar("T")
DAY_S = 86400.0


class CannotJudge(EdgeAgentError):
    """The test could not reach a verdict (sensor not open, quantity missing, no self-test)."""


class SensorPort(Protocol):
    """How a test reaches a sensor: its driver, called on the sensor's own worker thread."""

    driver: Any

    async def call(self, fn: Callable[[], T], timeout: float | None = None) -> T: ...


@dataclass
class TestContext:
    """What a test run can use; the daemon and the CLI each build one."""

    port: Callable[[str], SensorPort]
    """The sensor's port by name; raises :class:`CannotJudge` when it is not available."""
    calibrations: ActiveCalibrations
    wall: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    """Time stamps of readings (the drivers' clock: a simulated one in tests)."""
    sleep: Callable[[float], Awaitable[None]] | None = None

    __test__ = False

    async def pause(self, seconds: float) -> None:
        if seconds > 0:
            await (self.sleep or asyncio.sleep)(seconds)


# -- gathering ------------------------------------------------------------------------------


async def read_once(ctx: TestContext, sensor: str) -> tuple[float, dict[str, float]]:
    """One corrected reading and the monotonic time the driver returned it."""
    port = ctx.port(sensor)
    driver = port.driver
    monotonic = ctx.monotonic

    def timed_read() -> tuple[float, Mapping[str, float]]:
        values = driver.read()
        return monotonic(), values

    at, values = await port.call(timed_read)
    corrected, _ = ctx.calibrations.apply(sensor, values)
    return at, corrected


async def series(
    ctx: TestContext, sensor: str, quantity: str, samples: int, spacing: float
) -> list[tuple[float, float]]:
    """``samples`` readings of one quantity, ``spacing`` seconds apart: ``[(t, value), …]``."""
    points: list[tuple[float, float]] = []
    for i in range(samples):
        if i:
            await ctx.pause(spacing)
        at, values = await read_once(ctx, sensor)
        if quantity not in values:
            raise CannotJudge(
                f"{sensor} did not report {quantity} (reported: {', '.join(sorted(values)) or 'nothing'})"
            )
        points.append((at, values[quantity]))
    return points


# -- judging (pure) ---------------------------------------------------------------------------


def _r(value: float) -> float:
    return float(f"{value:.6g}")


def judge_range(values: Mapping[str, float], limits: Mapping[str, tuple[float, float]]) -> Verdict:
    missing = [q for q in limits if q not in values]
    if missing:
        raise CannotJudge(
            f"no value for {', '.join(missing)} (reported: {', '.join(sorted(values)) or 'nothing'})"
        )
    outside = [
        f"{q} = {values[q]:.6g} outside [{low:g}, {high:g}]"
        for q, (low, high) in limits.items()
        if not low <= values[q] <= high
    ]
    measured = {q: _r(values[q]) for q in limits}
    limit_view = {q: [low, high] for q, (low, high) in limits.items()}
    if outside:
        return Verdict("fail", "; ".join(outside), measured, limit_view)
    return Verdict(
        "pass",
        f"{len(limits)} quantit{'y' if len(limits) == 1 else 'ies'} within limits",
        measured,
        limit_view,
    )


def judge_noise(values: Sequence[float], max_std: float) -> Verdict:
    std = statistics.stdev(values)
    measured = {"std": _r(std), "mean": _r(statistics.fmean(values)), "samples": len(values)}
    limits = {"max_std": max_std}
    if std > max_std:
        return Verdict(
            "fail",
            f"standard deviation {std:.4g} over {len(values)} samples exceeds {max_std:g}",
            measured,
            limits,
        )
    return Verdict("pass", f"standard deviation {std:.4g} over {len(values)} samples", measured, limits)


def judge_stuck(values: Sequence[float], min_change: float, window_s: float) -> Verdict:
    spread = max(values) - min(values)
    measured = {
        "change": _r(spread),
        "value": _r(values[-1]),
        "samples": len(values),
        "window_s": _r(window_s),
    }
    limits = {"min_change": min_change}
    if spread <= min_change:
        what = "did not change at all" if spread == 0 else f"changed only {spread:.4g}"
        return Verdict(
            "fail",
            f"value {values[-1]:.6g} {what} over {len(values)} samples in {window_s:.3g} s (stuck sensor?)",
            measured,
            limits,
        )
    return Verdict(
        "pass", f"value changed {spread:.4g} over {len(values)} samples in {window_s:.3g} s", measured, limits
    )


def judge_rate(points: Sequence[tuple[float, float]], max_rate: float) -> Verdict:
    worst = 0.0
    for (t0, v0), (t1, v1) in itertools.pairwise(points):
        dt = t1 - t0
        if dt > 0:
            worst = max(worst, abs(v1 - v0) / dt)
    measured = {"max_rate_per_s": _r(worst), "samples": len(points)}
    limits = {"max_rate": max_rate}
    if worst > max_rate:
        return Verdict(
            "fail", f"value changed at {worst:.4g}/s, faster than {max_rate:g}/s (spike?)", measured, limits
        )
    return Verdict("pass", f"fastest change {worst:.4g}/s", measured, limits)


def judge_agreement(
    a: Sequence[float], b: Sequence[float], tolerance: float, names: tuple[str, str]
) -> Verdict:
    mean_a, mean_b = statistics.fmean(a), statistics.fmean(b)
    diff = mean_a - mean_b
    measured = {names[0]: _r(mean_a), names[1]: _r(mean_b), "difference": _r(diff)}
    limits = {"tolerance": tolerance}
    if abs(diff) > tolerance:
        return Verdict(
            "fail",
            f"{names[0]} {mean_a:.4g} and {names[1]} {mean_b:.4g} differ by {abs(diff):.4g} > {tolerance:g}",
            measured,
            limits,
        )
    return Verdict(
        "pass", f"{names[0]} and {names[1]} agree within {abs(diff):.4g} (≤ {tolerance:g})", measured, limits
    )


def judge_self_test(result: SelfTestResult) -> Verdict:
    measured = {k: _r(float(v)) for k, v in result.measurements.items() if math.isfinite(float(v))}
    return Verdict("pass" if result.passed else "fail", result.detail, measured, {})


def judge_calibration_due(
    records: Sequence[CalibrationRecord], *, what: str, max_age_s: float, now: float
) -> Verdict:
    limits = {"max_age_days": _r(max_age_s / DAY_S)}
    if not records:
        return Verdict("fail", f"{what} has never been calibrated (or its calibration was reset)", {}, limits)
    oldest = min(records, key=lambda r: r.calibrated_at or 0.0)
    age = now - (oldest.calibrated_at or 0.0)
    expired = [r for r in records if r.expires_at is not None and r.expires_at <= now]
    measured: dict[str, float | int | str | None] = {
        "age_days": _r(age / DAY_S),
        "calibration": oldest.id,
        "quantity": oldest.quantity,
    }
    if expired:
        r = expired[0]
        return Verdict(
            "fail",
            f"calibration {r.id} of {r.sensor}.{r.quantity} expired {(now - (r.expires_at or now)) / DAY_S:.1f} days ago",
            measured,
            limits,
        )
    if age > max_age_s:
        return Verdict(
            "fail",
            f"calibration {oldest.id} of {oldest.sensor}.{oldest.quantity} is {age / DAY_S:.1f} days old, more than {max_age_s / DAY_S:g}",
            measured,
            limits,
        )
    return Verdict(
        "pass", f"calibrated {age / DAY_S:.1f} days ago (limit {max_age_s / DAY_S:g})", measured, limits
    )


# -- running ----------------------------------------------------------------------------------


async def run_range(test: RangeTest, ctx: TestContext) -> Verdict:
    _, values = await read_once(ctx, test.sensor)
    return judge_range(values, test.limits)


async def run_noise(test: NoiseTest, ctx: TestContext) -> Verdict:
    points = await series(ctx, test.sensor, test.quantity, test.samples, test.spacing)
    return judge_noise([v for _, v in points], test.max_std)


async def run_stuck(test: StuckTest, ctx: TestContext) -> Verdict:
    points = await series(ctx, test.sensor, test.quantity, test.samples, test.spacing)
    return judge_stuck([v for _, v in points], test.min_change, points[-1][0] - points[0][0])


async def run_rate(test: RateTest, ctx: TestContext) -> Verdict:
    return judge_rate(
        await series(ctx, test.sensor, test.quantity, test.samples, test.spacing), test.max_rate
    )


async def run_agreement(test: AgreementTest, ctx: TestContext) -> Verdict:
    a: list[float] = []
    b: list[float] = []
    for i in range(test.samples):
        if i:
            await ctx.pause(test.spacing)
        # One reading of each, back to back, so both see the same moment.
        a += [v for _, v in await series(ctx, test.sensor, test.quantity, 1, 0)]
        b += [v for _, v in await series(ctx, test.other, test.quantity_of_other, 1, 0)]
    names = (f"{test.sensor}.{test.quantity}", f"{test.other}.{test.quantity_of_other}")
    return judge_agreement(a, b, test.tolerance, names)


async def run_self_test(test: SelfTest, ctx: TestContext) -> Verdict:
    port = ctx.port(test.sensor)
    self_test = getattr(port.driver, "self_test", None)
    if not callable(self_test):
        raise CannotJudge(f"the driver of {test.sensor} has no self-test")
    result = await port.call(self_test, test.timeout)
    if not isinstance(result, SelfTestResult):
        raise CannotJudge(f"the driver's self_test() returned {type(result).__name__}, not a SelfTestResult")
    return judge_self_test(result)


async def run_calibration_due(test: CalibrationDueTest, ctx: TestContext) -> Verdict:
    records = [r for q, r in ctx.calibrations.for_sensor(test.sensor).items() if test.quantity in (None, q)]
    what = f"{test.sensor}.{test.quantity}" if test.quantity else test.sensor
    return judge_calibration_due(records, what=what, max_age_s=test.max_age, now=ctx.wall())


KINDS: dict[str, Callable[[Any, TestContext], Awaitable[Verdict]]] = {
    "range": run_range,
    "noise": run_noise,
    "stuck": run_stuck,
    "rate": run_rate,
    "agreement": run_agreement,
    "self_test": run_self_test,
    "calibration_due": run_calibration_due,
}


async def run_kind(test: TestSettings, ctx: TestContext) -> Verdict:
    return await KINDS[test.kind](test, ctx)
