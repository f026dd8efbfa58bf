"""``edge-agent read``: one-shot or repeated readings from configured sensors, for the technician."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edge_agent.calibration import CAL_KEY, ActiveCalibrations
from edge_agent.cli.cal_common import active_calibrations
from edge_agent.cli.common import (
    DEFAULT_CONFIG,
    EX_USAGE,
    ConfigOption,
    console,
    err_console,
    escape,
    load_config,
)
from edge_agent.errors import HardwareOpenError
from edge_agent.sampling.hardware import Hardware
from edge_agent.sampling.registry import DriverRegistry, load_registry
from edge_agent.settings import SensorSettings
from edge_drivers.api import BusError, DriverError, Sensor

if TYPE_CHECKING:
    from rich.console import Group

MAX_ROWS_SHOWN = 40


@dataclass(frozen=True)
class Outcome:
    sensor: str
    ts: datetime
    values: Mapping[str, float] | None = None
    error: Exception | None = None
    cal: Mapping[str, int] | None = None
    """Ids of the calibrations applied, by quantity (None: ``--raw``, nothing applied)."""
    raw: bool = False

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sensor": self.sensor, "ts": rfc3339(self.ts)}
        if self.error is None:
            out["values"] = dict(self.values or {})
            if self.cal:
                out[CAL_KEY] = dict(self.cal)
            if self.raw:
                out["raw"] = True
        else:
            out["error"] = {"type": type(self.error).__name__, "message": str(self.error)}
            if isinstance(self.error, BusError) and self.error.errno is not None:
                out["error"]["errno"] = self.error.errno
        return out


def rfc3339(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _format(value: float) -> str:
    return f"{value:.10g}"  # published values are already rounded to the resolution


class _LinesView:
    """One line per quantity in aligned columns; an error on a line of its own, wrapped at the
    terminal's width (a table cell would cut it to "…" at 80 columns).  The last
    MAX_ROWS_SHOWN lines are kept for the live view."""

    def __init__(self, registry: DriverRegistry, drivers: Mapping[str, str]) -> None:
        self.registry = registry
        self.drivers = drivers
        self.sensor_width = max(len(name) for name in [*drivers, "sensor"])
        self.lines: list[str] = []

    def header(self) -> str:
        return f"[bold]{'time':<12}  {'sensor':<{self.sensor_width}}  {'quantity':<24} {'value':>12} unit[/]"

    def add(self, outcome: Outcome) -> list[str]:
        """The new lines (also kept for :meth:`render`)."""
        when = outcome.ts.astimezone().strftime("%H:%M:%S.%f")[:-3]
        lead = f"{when:<12}  {escape(outcome.sensor):<{self.sensor_width}}  "
        added: list[str] = []
        if outcome.error is not None:
            kind = type(outcome.error).__name__
            added.append(f"{lead}[red]error: {escape(f'{kind}: {outcome.error}')}[/]")
        for quantity, value in (outcome.values or {}).items():
            unit = self.registry.unit(self.drivers[outcome.sensor], quantity)
            mark = (
                f"  [dim]cal #{outcome.cal[quantity]}[/]" if outcome.cal and quantity in outcome.cal else ""
            )
            added.append(f"{lead}{escape(quantity):<24} {_format(value):>12} {escape(unit)}{mark}")
            lead = " " * len(lead)
        if outcome.error is None and not outcome.values:
            added.append(f"{lead}[dim]no quantity available[/]")
        self.lines.extend(added)
        return added

    def render(self) -> Group:
        from rich.console import Group
        from rich.text import Text

        return Group(*(Text.from_markup(line) for line in [self.header(), *self.lines[-MAX_ROWS_SHOWN:]]))


def _select(sensors: list[SensorSettings], names: list[str], all_: bool) -> list[SensorSettings]:
    if all_ or not names:
        return [s for s in sensors if s.enabled or names]
    known = {s.name: s for s in sensors}
    unknown = [n for n in names if n not in known]
    if unknown:
        err_console.print(
            f"[red]unknown sensor {', '.join(map(repr, unknown))}; configured: {', '.join(known) or 'none'}[/]"
        )
        raise typer.Exit(EX_USAGE)
    return [known[n] for n in names]


def read(
    sensors: Annotated[
        list[str] | None,
        typer.Argument(help="Sensor names from the config (default: all).", show_default=False),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Read every enabled sensor.")] = False,
    count: Annotated[
        int,
        typer.Option("--count", "-n", min=0, help="Readings per sensor; 0 reads until Ctrl-C.", metavar="N"),
    ] = 1,
    interval: Annotated[
        float, typer.Option("--interval", "-i", min=0.0, help="Seconds between readings.", metavar="SECONDS")
    ] = 1.0,
    raw: Annotated[
        bool, typer.Option("--raw", help="Show the uncorrected values, without the calibrations in effect.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON lines: sensor, ts, values (and cal ids) or error.")
    ] = False,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Read configured sensors now and print what the daemon would send.

    Values are calibrated and rounded as the daemon sends them, with the calibration ids
    (--raw: as the sensor reports them).  A table, or JSON lines with --json.
    """
    settings = load_config(config)
    selected = _select(list(settings.sensors), sensors or [], all_)
    if not selected:
        err_console.print("[yellow]no sensors to read: the config defines none (or none enabled)[/]")
        raise typer.Exit(1)
    registry = load_registry()
    calibrations = ActiveCalibrations() if raw else active_calibrations(settings)
    view = _LinesView(registry, {s.name: s.driver for s in selected})
    stream = as_json or not console.is_terminal  # piped: line by line, each ending in a newline
    failed = False
    with Hardware(registry) as hardware:
        opened: dict[str, _Opened] = {}
        for s in selected:
            try:
                driver = hardware.open_sensor(s)
            except (DriverError, HardwareOpenError) as exc:
                failed = True
                _emit(Outcome(s.name, datetime.now(UTC), error=exc), view, as_json, stream)
                continue
            data = dict if raw else calibrations.driver_data(s.name, driver, hardware.quantities(s))
            opened[s.name] = _Opened(driver, data)
        if not opened:
            if not stream:
                console.print(view.render())
            raise typer.Exit(1)
        from rich.live import Live

        live = None if stream else Live(view.render(), console=console, auto_refresh=False)
        try:
            if live is not None:
                live.start()
            n = 0
            while count == 0 or n < count:
                if n:
                    hardware.clock.sleep(interval)
                for name, sensor in opened.items():
                    outcome = _read_one(name, sensor, raw)
                    failed |= outcome.error is not None
                    _emit(outcome, view, as_json, stream)
                    if live is not None:
                        live.update(view.render(), refresh=True)
                n += 1
        except KeyboardInterrupt:
            pass
        finally:
            if live is not None:
                live.stop()
    if failed:
        raise typer.Exit(1)


@dataclass(frozen=True)
class _Opened:
    driver: Sensor
    data: Callable[[Mapping[str, float]], Mapping[str, Any]]
    """Raw values to what the daemon sends: corrected, derived, rounded, with ``cal``."""


def _read_one(name: str, sensor: _Opened, raw: bool) -> Outcome:
    try:
        values = sensor.driver.read()
    except DriverError as exc:
        return Outcome(name, datetime.now(UTC), error=exc)
    data = dict(sensor.data(values))
    cal = data.pop(CAL_KEY, None)
    return Outcome(name, datetime.now(UTC), values=data, cal=cal, raw=raw)


def _emit(outcome: Outcome, view: _LinesView, as_json: bool, stream: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(outcome.as_json()) + "\n")
        sys.stdout.flush()
        return
    if stream and not view.lines:
        console.print(view.header())
    for line in view.add(outcome):
        if stream:
            console.print(line)
