"""``edge-agent test run``: run sensor tests now and show the results.

Exit status: 0 all passed, 1 a test failed, 69 a test could not run (error), 2 bad
usage (unknown test name, nothing selected).  The CLI opens the sensors itself, like
``edge-agent read``.  Each result is also recorded as a ``test_result`` event (trigger
``cli``), so the cloud sees what the technician saw: written durably to the state
directory's spool (:mod:`edge_agent.spool`), which the daemon commits to its outbox
within a second, or at its next start.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import Annotated

import typer

from edge_agent.cli.cal_common import active_calibrations, fail, opened_sensors
from edge_agent.cli.common import DEFAULT_CONFIG, ConfigOption, escape, load_config
from edge_agent.cli.tables import print_rows
from edge_agent.events import NewEvent
from edge_agent.sampling.clock_sync import ClockWatch
from edge_agent.sensor_tests.config import AgreementTest, TestSettings
from edge_agent.sensor_tests.kinds import CannotJudge, SensorPort, TestContext
from edge_agent.sensor_tests.result import TestResult, exit_status
from edge_agent.sensor_tests.runner import TestRunner
from edge_agent.settings import Settings
from edge_agent.spool import SpoolError, write_spool
from edge_protocol.wire import boot_id

app = typer.Typer(help="Sensor tests: run them now.", no_args_is_help=True)

STYLE = {"pass": "green", "fail": "red", "error": "yellow"}


@app.command("run")
def run(
    names: Annotated[
        list[str] | None, typer.Argument(help="Test names from the config.", show_default=False)
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Run every enabled test.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as a JSON array.")] = False,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Run sensor tests now; exit 1 if any failed, 69 if any could not run."""
    settings = load_config(config)
    # The results are the output; the runner's log lines (for the daemon's journal) are not.
    logging.getLogger("edge_agent.sensor_tests").setLevel(logging.CRITICAL)
    selected = _select(settings, names or [], all_)
    results = _run(settings, selected)
    _record(settings, results)
    if as_json:
        sys.stdout.write(json.dumps([r.event_data() for r in results], indent=2) + "\n")
    else:
        _print(results)
    raise typer.Exit(exit_status(results))


def _select(settings: Settings, names: list[str], all_: bool) -> list[TestSettings]:
    by_name = {t.name: t for t in settings.tests}
    if all_ and names:
        fail("give test names or --all, not both")
    if all_:
        selected = [t for t in settings.tests if t.enabled]
        if not selected:
            fail("no tests to run: the config has no enabled [[tests]]")
        return selected
    if not names:
        fail(f"name the tests to run, or --all; configured: {', '.join(by_name) or 'none'}")
    unknown = [n for n in names if n not in by_name]
    if unknown:
        fail(f"unknown test {', '.join(map(repr, unknown))}; configured: {', '.join(by_name) or 'none'}")
    return [by_name[n] for n in dict.fromkeys(names)]


def _run(settings: Settings, tests: list[TestSettings]) -> list[TestResult]:
    needed = {t.sensor for t in tests} | {t.other for t in tests if isinstance(t, AgreementTest)}
    sensors = [s for s in settings.sensors if s.name in needed]
    calibrations = active_calibrations(settings)
    with opened_sensors(sensors) as (opened, problems, _):

        def port(name: str) -> SensorPort:
            if name in opened:
                return opened[name]
            raise CannotJudge(f"sensor {name} cannot be opened: {problems.get(name, 'unknown')}")

        runner = TestRunner(tests, TestContext(port=port, calibrations=calibrations))
        return asyncio.run(runner.run_many(tests, "cli"))


def _record(settings: Settings, results: list[TestResult]) -> None:
    """Spool the results as events for the daemon; a failure is reported, not fatal (the
    results are printed all the same)."""
    clock = ClockWatch(settings.device.clock_check).state
    boot = boot_id()
    events = [NewEvent.now("test_result", r.sensor, r.event_data(), boot=boot, clock=clock) for r in results]
    try:
        write_spool(settings.storage.state_dir, events)
    except SpoolError as exc:
        print(f"edge-agent: results not recorded as events: {exc}", file=sys.stderr)


def _measured(result: TestResult) -> str:
    return ", ".join(
        f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.measured.items()
    )


def _print(results: list[TestResult]) -> None:
    rows = [
        (
            escape(r.test),
            escape(r.sensor),
            r.kind,
            f"[{STYLE[r.status]}]{r.status}[/]",
            escape(_measured(r)),
            escape(r.detail),
            f"{r.duration_s:.1f} s",
        )
        for r in results
    ]
    print_rows(
        "sensor tests",
        ("test", "sensor", "kind", "status", "measured", "detail", "took"),
        rows,
        right=("took",),
    )
