"""Runs sensor tests and turns every outcome into a result; nothing a test does escapes.

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

from drivers.errors import DriverError
from edge_agent.sensor_tests.config import TestSettings
from edge_agent.sensor_tests.kinds import CannotJudge, TestContext, run_kind
from edge_agent.sensor_tests.result import TestResult, Trigger, Verdict

log = logging.getLogger(__name__)

Publish = Callable[[TestResult], Awaitable[object]]


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

    def get(self, name: str) -> TestSettings | None:
        return self.tests.get(name)

    def enabled(self) -> list[TestSettings]:
        return [t for t in self.tests.values() if t.enabled]

    async def run(self, test: TestSettings, trigger: Trigger = "schedule") -> TestResult:
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
        if self._publish is not None:
            await self._publish(result)
        return result

    async def run_many(self, tests: Sequence[TestSettings], trigger: Trigger) -> list[TestResult]:
        """Run tests concurrently (tests of one sensor take turns on its worker); results in order."""
        return list(await asyncio.gather(*(self.run(t, trigger) for t in tests)))
