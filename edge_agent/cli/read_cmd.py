"""``edge-agent read``: one-shot or repeated readings from configured sensors, for the technician."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edge_agent.cli.common import DEFAULT_CONFIG, ConfigOption, console, err_console, escape, load_config
from edge_agent.errors import HardwareOpenError
from edge_agent.sampling.hardware import Hardware
from edge_agent.sampling.registry import DriverRegistry, load_registry
from edge_agent.settings import SensorSettings
from edge_drivers.api import BusError, DriverError, Sensor

if TYPE_CHECKING:
    from rich.table import Table

MAX_ROWS_SHOWN = 40


@dataclass(frozen=True)
class Outcome:
    sensor: str
    ts: datetime
    values: Mapping[str, float] | None = None
    error: Exception | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sensor": self.sensor, "ts": rfc3339(self.ts)}
        if self.error is None:
            out["values"] = dict(self.values or {})
        else:
            out["error"] = {"type": type(self.error).__name__, "message": str(self.error)}
            if isinstance(self.error, BusError) and self.error.errno is not None:
                out["error"]["errno"] = self.error.errno
        return out


def rfc3339(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _unit(registry: DriverRegistry, driver: str, quantity: str) -> str:
    found = registry.get(driver)
    if found is not None:
        for q in found.spec.quantities:
            if q.name == quantity:
                return q.unit
    return quantity.rsplit("_", 1)[-1]  # names end with their unit


def _format(value: float) -> str:
    return f"{value:.6g}" if abs(value) < 1e6 else f"{value:.1f}"


class _TableView:
    """Rows of readings: one row per quantity, the last MAX_ROWS_SHOWN kept on screen."""

    def __init__(self, registry: DriverRegistry, drivers: Mapping[str, str]) -> None:
        self.registry = registry
        self.drivers = drivers
        self.rows: list[tuple[str, ...]] = []

    def add(self, outcome: Outcome) -> None:
        when = outcome.ts.astimezone().strftime("%H:%M:%S.%f")[:-3]
        if outcome.error is not None:
            kind = type(outcome.error).__name__
            self.rows.append(
                (when, outcome.sensor, "[red]error[/]", f"[red]{escape(f'{kind}: {outcome.error}')}[/]", "")
            )
            return
        first = True
        for quantity, value in (outcome.values or {}).items():
            unit = _unit(self.registry, self.drivers[outcome.sensor], quantity)
            label = (when, outcome.sensor) if first else ("", "")
            self.rows.append((*label, quantity, _format(value), unit))
            first = False
        if first:
            self.rows.append((when, outcome.sensor, "[dim]no quantity available[/]", "", ""))

    def render(self) -> Table:
        from rich.table import Table

        table = Table("time", "sensor", "quantity", "value", "unit")
        table.columns[3].justify = "right"
        for row in self.rows[-MAX_ROWS_SHOWN:]:
            table.add_row(*row)
        return table


def _select(sensors: list[SensorSettings], names: list[str], all_: bool) -> list[SensorSettings]:
    if all_ or not names:
        return [s for s in sensors if s.enabled or names]
    known = {s.name: s for s in sensors}
    unknown = [n for n in names if n not in known]
    if unknown:
        err_console.print(
            f"[red]unknown sensor {', '.join(map(repr, unknown))}; configured: {', '.join(known) or 'none'}[/]"
        )
        raise typer.Exit(2)
    return [known[n] for n in names]


def read(
    sensors: Annotated[
        list[str] | None, typer.Argument(help="Sensor names from the config (default: all).")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Read every enabled sensor.")] = False,
    count: Annotated[
        int, typer.Option("--count", "-n", min=0, help="Readings per sensor; 0 = until Ctrl-C.")
    ] = 1,
    interval: Annotated[
        float, typer.Option("--interval", "-i", min=0.0, help="Seconds between readings.")
    ] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines: sensor, ts, values or error.")] = False,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Read configured sensors now and print the values (a table, or JSON lines)."""
    settings = load_config(config)
    selected = _select(list(settings.sensors), sensors or [], all_)
    if not selected:
        err_console.print("[yellow]no sensors to read: the config defines none (or none enabled)[/]")
        raise typer.Exit(1)
    registry = load_registry()
    view = _TableView(registry, {s.name: s.driver for s in selected})
    failed = False
    with Hardware(registry) as hardware:
        opened: dict[str, Sensor] = {}
        for s in selected:
            try:
                opened[s.name] = hardware.open_sensor(s)
            except (DriverError, HardwareOpenError) as exc:
                failed = True
                _emit(Outcome(s.name, datetime.now(UTC), error=exc), view, as_json)
        if not opened:
            _finish(view, as_json)
            raise typer.Exit(1)
        from rich.live import Live

        live = None if as_json else Live(view.render(), console=console, auto_refresh=False)
        try:
            if live is not None:
                live.start()
            n = 0
            while count == 0 or n < count:
                if n:
                    hardware.clock.sleep(interval)
                for name, driver in opened.items():
                    outcome = _read_one(name, driver)
                    failed |= outcome.error is not None
                    _emit(outcome, view, as_json)
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


def _read_one(name: str, driver: Sensor) -> Outcome:
    try:
        values = driver.read()
    except DriverError as exc:
        return Outcome(name, datetime.now(UTC), error=exc)
    return Outcome(name, datetime.now(UTC), values=values)


def _emit(outcome: Outcome, view: _TableView, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(outcome.as_json()) + "\n")
        sys.stdout.flush()
    else:
        view.add(outcome)


def _finish(view: _TableView, as_json: bool) -> None:
    if not as_json:
        console.print(view.render())
