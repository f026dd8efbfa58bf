"""Runs sensor tests and turns every outcome into a result; nothing a test does escapes.

Tests run one at a time (a device has few; running them together would let one disturb
another), and after a ``self_test`` the other tests of that sensor wait
:data:`SELF_TEST_SETTLE_S`: a self-test may disturb the sensor for a while (the SHT3x's
heater leaves it warm for ~10 s), and an agreement or stuck test must not judge that.

:meth:`TestRunner.run` bounds a run by the test's ``timeout`` and converts whatever goes
wrong into an ``error`` result: a driver error, a hung driver, a sensor that is not open,
and (logged with its traceback) a bug.  Results go to ``publish`` — in the daemon, the
outbox as a ``test_result`` event, plus an ``alarm`` event for a failed test that asks
for one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from edge_agent.sensor_tests.config import TestSettings
from edge_agent.sensor_tests.kinds import CannotJudge, TestContext, run_kind
from edge_agent.sensor_tests.result import TestResult, Trigger, Verdict
from edge_drivers.api import DriverError

log = logging.getLogger(__name__)

Publish = Callable[[TestResult], Awaitable[object]]
SELF_TEST_SETTLE_S = 15.0


class TestRunner:
    """The configured tests, runnable by name, on a schedule, from the CLI or remotely."""

    __test__ = False

    def __init__(
        self,
        tests: Sequence[TestSettings],
        ctx: TestContext,
        *,
        publish: Publish | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tests = {t.name: t for t in tests}
        self.ctx = ctx
        self._publish = publish
        self._monotonic = monotonic
        self._one_at_a_time = asyncio.Lock()
        self._settle_until: dict[str, float] = {}

    def get(self, name: str) -> TestSettings | None:
        return self.tests.get(name)

    def enabled(self) -> list[TestSettings]:
        return [t for t in self.tests.values() if t.enabled]

    async def run(self, test: TestSettings, trigger: Trigger = "schedule") -> TestResult:
        async with self._one_at_a_time:
            await self._settle(test)
            result = await self._run(test, trigger)
            if test.kind == "self_test":
                self._settle_until[test.sensor] = self._monotonic() + SELF_TEST_SETTLE_S
        if self._publish is not None:
            await self._publish(result)
        return result

    async def _settle(self, test: TestSettings) -> None:
        sensors = {test.sensor, getattr(test, "other", test.sensor)}
        wait = max(self._settle_until.get(s, 0.0) for s in sensors) - self._monotonic()
        if wait > 0 and test.kind != "self_test":
            await asyncio.sleep(wait)

    async def _run(self, test: TestSettings, trigger: Trigger) -> TestResult:
        started = self._monotonic()
        try:
            async with asyncio.timeout(test.timeout):
                verdict = await run_kind(test, self.ctx)
        except TimeoutError:
            verdict = Verdict("error", f"did not finish within {test.timeout:g} s (sensor hung or busy?)")
        except CannotJudge as exc:
            verdict = Verdict("error", str(exc))
        except DriverError as exc:
            verdict = Verdict("error", f"driver error: {type(exc).__name__}: {exc}")
        except Exception as exc:  # a bug in a kind or a third-party driver: one error result, not a crash
            log.exception("sensor test %s raised", test.name)
            verdict = Verdict("error", f"test raised {type(exc).__name__}: {exc}")
        result = TestResult(
            test=test.name,
            sensor=test.sensor,
            kind=test.kind,
            status=verdict.status,
            detail=verdict.detail,
            measured=verdict.measured,
            limits=verdict.limits,
            duration_s=self._monotonic() - started,
            trigger=trigger,
            alarm=test.alarm,
        )
        if result.status != "pass":
            log.log(
                logging.WARNING if result.status == "fail" else logging.ERROR,
                "sensor test %s (%s on %s): %s — %s",
                test.name,
                test.kind,
                test.sensor,
                result.status,
                result.detail,
            )
        return result

    async def run_many(self, tests: Sequence[TestSettings], trigger: Trigger) -> list[TestResult]:
        """Run tests one after the other, self-tests last (they may disturb the sensor)."""
        order = sorted(range(len(tests)), key=lambda i: tests[i].kind == "self_test")
        results: dict[int, TestResult] = {}
        for i in order:
            results[i] = await self.run(tests[i], trigger)
        return [results[i] for i in range(len(tests))]
