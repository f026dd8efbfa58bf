"""``edge-agent calibration show|history|reset|rollback``: the device's calibration records.

Every change (a calibration, a reset, a rollback) is a new row of the history; nothing
is ever edited or deleted.  A running daemon picks changes up within a few seconds.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from edge_agent.calibration import CalibrationInputError, CalibrationRecord
from edge_agent.cli.cal_common import calibration_store, fail, known_sensor
from edge_agent.cli.common import DEFAULT_CONFIG, ConfigOption, console, escape, load_config
from edge_agent.sampling.registry import load_registry
from edge_agent.settings import Settings
from edge_agent.settings.checks import sensor_quantities

if TYPE_CHECKING:
    from rich.table import Table

app = typer.Typer(help="Calibration records: show, history, reset, rollback.", no_args_is_help=True)

QuantityOption = Annotated[str | None, typer.Option("--quantity", "-q", help="Only this quantity.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _when(ts: float | None) -> str:
    return "—" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _check_quantity(settings: Settings, sensor: str, quantity: str | None) -> None:
    if quantity is None:
        return
    target = known_sensor(settings, sensor)
    known = sensor_quantities(target, load_registry()) or set()
    if quantity not in known:
        fail(f"sensor {sensor!r} does not report {quantity!r}; it reports: {', '.join(sorted(known))}")


def _table(records: list[CalibrationRecord], title: str) -> Table:
    from rich.table import Table

    table = Table(title=title)
    for name in (
        "id",
        "sensor",
        "quantity",
        "action",
        "method",
        "gain",
        "offset",
        "calibrated",
        "expires",
        "by",
        "note",
    ):
        table.add_column(name, justify="right" if name in ("id", "gain", "offset") else "left")
    for r in records:
        table.add_row(
            str(r.id),
            r.sensor,
            r.quantity,
            r.action + (f" → #{r.restores}" if r.restores else ""),
            r.method or "none",
            f"{r.gain:.6g}",
            f"{r.offset:+.6g}",
            _when(r.calibrated_at),
            _when(r.expires_at),
            escape(r.technician or ""),
            escape(r.note or ""),
        )
    return table


def _print(records: list[CalibrationRecord], title: str, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps([r.as_json() for r in records], indent=2) + "\n")
    elif not records:
        console.print(f"{title}: none")
    else:
        console.print(_table(records, title))


@app.command("show")
def show(
    sensor: Annotated[
        str | None, typer.Argument(help="Sensor name (default: all).", show_default=False)
    ] = None,
    as_json: JsonOption = False,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """The calibrations in effect now."""
    settings = load_config(config)
    if sensor is not None:
        known_sensor(settings, sensor)
    with calibration_store(settings) as store:
        _print(store.active(sensor), "Calibrations in effect", as_json)


@app.command("history")
def history(
    sensor: Annotated[str, typer.Argument(help="Sensor name.", show_default=False)],
    quantity: QuantityOption = None,
    as_json: JsonOption = False,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Every calibration, reset and rollback of a sensor, oldest first."""
    settings = load_config(config)
    known_sensor(settings, sensor)
    _check_quantity(settings, sensor, quantity)
    with calibration_store(settings) as store:
        _print(store.history(sensor, quantity), f"Calibration history of {sensor}", as_json)


@app.command("reset")
def reset(
    sensor: Annotated[str, typer.Argument(help="Sensor name.", show_default=False)],
    quantity: QuantityOption = None,
    technician: Annotated[str | None, typer.Option("--technician")] = None,
    note: Annotated[str | None, typer.Option("--note")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Stop correcting the sensor (or one quantity); recorded in the history, undo with rollback."""
    settings = load_config(config)
    known_sensor(settings, sensor)
    _check_quantity(settings, sensor, quantity)
    with calibration_store(settings) as store:
        try:
            rows = store.reset(sensor, quantity, technician=technician, note=note)
        except CalibrationInputError as exc:
            fail(str(exc), 1)
    for r in rows:
        console.print(f"Reset {r.sensor}.{r.quantity} (history #{r.id}): readings go out uncorrected.")


@app.command("rollback")
def rollback(
    sensor: Annotated[str, typer.Argument(help="Sensor name.", show_default=False)],
    quantity: QuantityOption = None,
    technician: Annotated[str | None, typer.Option("--technician")] = None,
    note: Annotated[str | None, typer.Option("--note")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Undo the sensor's newest calibration change (or the quantity's): the one before applies again."""
    settings = load_config(config)
    known_sensor(settings, sensor)
    _check_quantity(settings, sensor, quantity)
    with calibration_store(settings) as store:
        try:
            r = store.rollback(sensor, quantity, technician=technician, note=note)
        except CalibrationInputError as exc:
            fail(str(exc), 1)
    if r.applies:
        console.print(
            f"Rolled back {r.sensor}.{r.quantity} (history #{r.id}): calibration #{r.restores} applies again "
            f"(gain {r.gain:.6g}, offset {r.offset:+.6g})."
        )
    else:
        console.print(f"Rolled back {r.sensor}.{r.quantity} (history #{r.id}): no correction applies now.")
