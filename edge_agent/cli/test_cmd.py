"""``edge-agent test run``: run sensor tests now and show the results.

Exit status: 0 all passed, 1 a test failed, 2 a test could not run (error), 64 bad
usage (unknown test name, nothing selected).  The CLI opens the sensors itself, like
``edge-agent read``; results are printed, not queued as events (the daemon's own runs,
and ``run-test`` remote commands, produce the events).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from edge_agent.cli.cal_common import active_calibrations, fail, opened_sensors
from edge_agent.cli.common import DEFAULT_CONFIG, ConfigOption, console, load_config
from edge_agent.sensor_tests.config import AgreementTest, TestSettings
from edge_agent.sensor_tests.kinds import CannotJudge, SensorPort, TestContext
from edge_agent.sensor_tests.result import TestResult, exit_status
from edge_agent.sensor_tests.runner import TestRunner
from edge_agent.settings import Settings

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
    """Run sensor tests now. Exit 1 if any failed, 2 if any could not run."""
    settings = load_config(config)
    # The results are the output; the runner's log lines (for the daemon's journal) are not.
    logging.getLogger("edge_agent.sensor_tests").setLevel(logging.CRITICAL)
    selected = _select(settings, names or [], all_)
    results = _run(settings, selected)
    if as_json:
        sys.stdout.write(json.dumps([r.event_data() for r in results], indent=2) + "\n")
    else:
        console.print(_table(results))
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


def _measured(result: TestResult) -> str:
    return ", ".join(
        f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.measured.items()
    )


def _table(results: list[TestResult]) -> Table:
    table = Table("test", "sensor", "kind", "status", "measured", "detail", "s")
    table.columns[6].justify = "right"
    for r in results:
        style = STYLE[r.status]
        table.add_row(
            r.test,
            r.sensor,
            r.kind,
            f"[{style}]{r.status}[/]",
            escape(_measured(r)),
            escape(r.detail),
            f"{r.duration_s:.1f}",
        )
    return table
