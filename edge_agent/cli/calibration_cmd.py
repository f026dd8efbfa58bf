"""``edge-agent calibration show|history|reset|rollback``: the device's calibration records.

Every change (a calibration, a reset, a rollback) is a new row of the history; nothing
is ever edited or deleted.  A running daemon picks changes up within a few seconds.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from typing import Annotated

import typer

from edge_agent.calibration import CalibrationInputError, CalibrationRecord
from edge_agent.cli.cal_common import calibration_store, fail, known_sensor, login_name
from edge_agent.cli.common import DEFAULT_CONFIG, ConfigOption, console, escape, load_config
from edge_agent.cli.tables import print_rows
from edge_agent.sampling.registry import load_registry
from edge_agent.settings import Settings
from edge_agent.settings.checks import sensor_quantities

app = typer.Typer(help="Calibration records: show, history, reset, rollback.", no_args_is_help=True)

QuantityOption = Annotated[str | None, typer.Option("--quantity", "-q", help="Only this quantity.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
TechnicianOption = Annotated[
    str | None,
    typer.Option("--technician", help="Who makes the change, for the history (default: your login name)."),
]
NoteOption = Annotated[str | None, typer.Option("--note", help="Why, for the history.")]


def _when(ts: float | None) -> str:
    return "—" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _check_quantity(settings: Settings, sensor: str, quantity: str | None) -> None:
    if quantity is None:
        return
    target = known_sensor(settings, sensor)
    known = sensor_quantities(target, load_registry()) or set()
    if quantity not in known:
        fail(f"sensor {sensor!r} does not report {quantity!r}; it reports: {', '.join(sorted(known))}")


def _number(value: float) -> str:
    return f"{value:.6g}"


def _correction(r: CalibrationRecord, unit: str) -> str:
    if not r.applies or r.method is None:
        return "none (readings go out uncorrected)"
    offset = f"{'+' if r.offset >= 0 else '−'} {_number(abs(r.offset))} {unit}"
    if r.method == "offset":
        return f"reading {offset}"
    return f"{_number(r.gain)} × reading {offset}"


def _expires(ts: float | None, now: float) -> str:
    if ts is None:
        return "never"
    return f"[bold red]expired[/] {_when(ts)}" if ts <= now else _when(ts)


def _points(r: CalibrationRecord, unit: str) -> str:
    """Each point: what the sensor read → the reference, and what the device reported before/after."""
    shown = []
    for i, p in enumerate(r.points):
        text = f"{_number(p.reading)} → {_number(p.reference)} {unit}"
        if i < len(r.as_found) and i < len(r.as_left):
            text += f" (as found {_number(r.as_found[i])}, as left {_number(r.as_left[i])})"
        shown.append(text)
    return escape("; ".join(shown))


def _print(records: list[CalibrationRecord], title: str, as_json: bool, settings: Settings) -> None:
    if as_json:
        sys.stdout.write(json.dumps([r.as_json() for r in records], indent=2) + "\n")
        return
    if not records:
        console.print(f"{title}: none")
        return
    registry = load_registry()
    drivers = {s.name: s.driver for s in settings.sensors}
    now = time.time()
    rows = []
    for r in records:
        unit = registry.unit(drivers.get(r.sensor, ""), r.quantity)
        rows.append(
            (
                f"#{r.id}",
                escape(r.sensor),
                escape(f"{r.quantity} [{unit}]" if unit else r.quantity),
                r.action + (f" → #{r.restores}" if r.restores else ""),
                escape(_correction(r, unit)),
                _when(r.calibrated_at),
                _expires(r.expires_at, now) if r.applies else "",
                escape(r.technician or ""),
                escape(r.reference_instrument or ""),
                _points(r, unit),
                escape(r.note or ""),
            )
        )
    headers = (
        "id", "sensor", "quantity", "action", "correction", "calibrated", "expires", "by", "reference",
        "points", "note",
    )  # fmt: skip
    print_rows(title, headers, rows, right=("id",))


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
        _print(store.active(sensor), "Calibrations in effect", as_json, settings)


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
        _print(store.history(sensor, quantity), f"Calibration history of {sensor}", as_json, settings)


@app.command("reset")
def reset(
    sensor: Annotated[str, typer.Argument(help="Sensor name.", show_default=False)],
    quantity: QuantityOption = None,
    technician: TechnicianOption = None,
    note: NoteOption = None,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Stop correcting the sensor (or one quantity); recorded in the history, undo with rollback."""
    settings = load_config(config)
    known_sensor(settings, sensor)
    _check_quantity(settings, sensor, quantity)
    with calibration_store(settings) as store:
        try:
            rows = store.reset(sensor, quantity, technician=technician or login_name(), note=note)
        except CalibrationInputError as exc:
            fail(str(exc), 1)
    for r in rows:
        console.print(f"Reset {r.sensor}.{r.quantity} (history #{r.id}): readings go out uncorrected.")


@app.command("rollback")
def rollback(
    sensor: Annotated[str, typer.Argument(help="Sensor name.", show_default=False)],
    quantity: QuantityOption = None,
    technician: TechnicianOption = None,
    note: NoteOption = None,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Undo the sensor's newest calibration command, whole (or the quantity's newest change).

    What was in effect before applies again; a rollback after a sensor-wide reset brings
    back every quantity it reset.
    """
    settings = load_config(config)
    known_sensor(settings, sensor)
    _check_quantity(settings, sensor, quantity)
    with calibration_store(settings) as store:
        try:
            rows = store.rollback(sensor, quantity, technician=technician or login_name(), note=note)
        except CalibrationInputError as exc:
            fail(str(exc), 1)
    for r in rows:
        if r.applies:
            console.print(
                f"Rolled back {r.sensor}.{r.quantity} (history #{r.id}): calibration #{r.restores} applies "
                f"again (gain {r.gain:.6g}, offset {r.offset:+.6g})."
            )
        else:
            console.print(
                f"Rolled back {r.sensor}.{r.quantity} (history #{r.id}): no correction applies now."
            )
