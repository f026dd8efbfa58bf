"""``edge-agent calibrate SENSOR``: fit and save a correction against a reference instrument.

Interactive (a technician at the cabinet): live readings until the sensor is steady,
the reference value at point 1, optionally point 2, the fitted correction with
before/after, confirm, save.  Ctrl-C at any point leaves everything as it was: nothing
is written before the final confirmation.

Non-interactive (scripts): ``--quantity Q --reference V`` measures the sensor now (the
mean of ``--samples`` readings) and fits an offset.  For two points, ``--reference2 V2``
and either ``--reading R --reading2 R2`` (readings taken beforehand, e.g. by a bath
controller's script) or, without them, the tool measures point 1, asks the caller to
bring the sensor to point 2 and press Enter (a line on stdin), then measures point 2.
``--yes`` saves without asking.  Exit status: 0 saved, 1 not saved (declined, bad fit),
64 bad usage, 130 interrupted.
"""

from __future__ import annotations

import getpass
import select
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Annotated

import typer

from edge_agent.calibration import (
    ActiveCalibrations,
    CalibrationInputError,
    CalibrationRecord,
    Correction,
    NewCalibration,
    Point,
    fit,
)
from edge_agent.cli.cal_common import calibration_store, fail, known_sensor, opened_sensors
from edge_agent.cli.common import DEFAULT_CONFIG, ConfigOption, console, escape, load_config
from edge_agent.settings import SensorSettings
from edge_agent.units import parse_duration
from edge_drivers.api import DriverError

if TYPE_CHECKING:
    from rich.table import Table

EX_INTERRUPTED = 130
DEFAULT_VALID_FOR = "365d"

Reader = Callable[[], Mapping[str, float]]


def calibrate(
    sensor: Annotated[str, typer.Argument(help="Sensor name from the config.", show_default=False)],
    quantity: Annotated[
        str | None, typer.Option("--quantity", "-q", help="Quantity to calibrate, e.g. temperature_c.")
    ] = None,
    reference: Annotated[
        float | None, typer.Option("--reference", help="Reference value at point 1 (non-interactive).")
    ] = None,
    reference2: Annotated[
        float | None, typer.Option("--reference2", help="Reference value at point 2 (two-point).")
    ] = None,
    reading: Annotated[
        float | None,
        typer.Option("--reading", help="Sensor reading (raw) at point 1, instead of measuring now."),
    ] = None,
    reading2: Annotated[
        float | None, typer.Option("--reading2", help="Sensor reading (raw) at point 2.")
    ] = None,
    samples: Annotated[
        int, typer.Option("--samples", min=1, max=1000, help="Readings averaged per point.")
    ] = 5,
    instrument: Annotated[
        str | None, typer.Option("--instrument", help="Reference instrument (model, serial).")
    ] = None,
    technician: Annotated[
        str | None, typer.Option("--technician", help="Who calibrates (default: your user name).")
    ] = None,
    note: Annotated[str | None, typer.Option("--note", help="Free text kept in the history.")] = None,
    valid_for: Annotated[
        str, typer.Option("--valid-for", help='Calibration expires after this, e.g. "180d".')
    ] = DEFAULT_VALID_FOR,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Save without asking.")] = False,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Calibrate a sensor against a reference: a wizard, or --reference for scripts."""
    settings = load_config(config)
    target = known_sensor(settings, sensor)
    try:
        validity = parse_duration(valid_for)
    except ValueError as exc:
        fail(f"--valid-for: {exc}")
    if validity <= 0:
        fail("--valid-for must be positive")
    interactive = reference is None
    if interactive and (reference2 is not None or reading is not None or reading2 is not None):
        fail("--reference2, --reading and --reading2 need --reference (or leave them all out for the wizard)")
    if reading2 is not None and reference2 is None:
        fail("--reading2 needs --reference2")
    if reference is not None and reference2 is not None and reference == reference2:
        fail(f"the two reference points are identical ({reference:g}); use two different conditions")
    if interactive and not sys.stdin.isatty():
        fail("the wizard needs a terminal; in scripts use --quantity Q --reference VALUE [--yes]")
    meta = _Meta(instrument, technician or _user(), note, validity)
    try:
        with opened_sensors([target]) as (opened, problems, _):
            if target.name not in opened:
                fail(f"cannot open {target.name}: {problems.get(target.name)}", 1)
            read = opened[target.name].driver.read
            with calibration_store(settings) as store:
                current = ActiveCalibrations(store.current(target.name))
                if interactive:
                    new = _wizard(target, read, current, quantity, samples, meta)
                else:
                    assert reference is not None
                    new = _scripted(
                        target,
                        read,
                        current,
                        quantity,
                        samples,
                        meta,
                        (reference, reading),
                        (reference2, reading2),
                    )
                if new is None or not _confirm(yes, interactive):
                    console.print("Not saved; the calibration in effect is unchanged.")
                    raise typer.Exit(1)
                saved = store.save(new)
            _report_saved(saved)
            if interactive:
                _show_after(read, target.name, saved)
    except KeyboardInterrupt:
        console.print("\n[yellow]Cancelled: nothing was saved; the calibration in effect is unchanged.[/]")
        raise typer.Exit(EX_INTERRUPTED) from None


class _Meta:
    def __init__(
        self, instrument: str | None, technician: str | None, note: str | None, validity: float
    ) -> None:
        self.instrument = instrument
        self.technician = technician
        self.note = note
        self.validity = validity


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def _take(read: Reader, quantity: str, samples: int, sensor: str) -> float:
    values: list[float] = []
    for _ in range(samples):
        try:
            got = read()
        except DriverError as exc:
            fail(f"{sensor}: {type(exc).__name__}: {exc}", 1)
        if quantity not in got:
            fail(
                f"{sensor} does not report {quantity!r} now (it reports: {', '.join(sorted(got)) or 'nothing'})",
                1,
            )
        values.append(got[quantity])
    return statistics.fmean(values)


def _pick_quantity(target: SensorSettings, read: Reader, quantity: str | None, interactive: bool) -> str:
    try:
        reported = sorted(read())
    except DriverError as exc:
        fail(f"{target.name}: {type(exc).__name__}: {exc}", 1)
    if quantity is not None:
        if quantity not in reported:
            fail(
                f"{target.name} does not report {quantity!r}; it reports: {', '.join(reported) or 'nothing'}"
            )
        return quantity
    if not interactive:
        fail(f"--quantity is required with --reference; {target.name} reports: {', '.join(reported)}")
    if len(reported) == 1:
        return reported[0]
    from rich.prompt import Prompt

    return Prompt.ask("Quantity to calibrate", choices=reported, default=reported[0], console=console)


def _new(
    target: SensorSettings,
    quantity: str,
    points: list[Point],
    current: ActiveCalibrations,
    meta: _Meta,
) -> NewCalibration:
    method, correction = fit(points)
    before = current.for_sensor(target.name).get(quantity)
    before_corr = before.correction if before else Correction()
    return NewCalibration(
        sensor=target.name,
        quantity=quantity,
        method=method,
        correction=correction,
        points=points,
        as_found=[before_corr.apply(p.reading) for p in points],
        as_left=[correction.apply(p.reading) for p in points],
        reference_instrument=meta.instrument,
        technician=meta.technician,
        note=meta.note,
        expires_at=time.time() + meta.validity,
    )


def _scripted(
    target: SensorSettings,
    read: Reader,
    current: ActiveCalibrations,
    quantity: str | None,
    samples: int,
    meta: _Meta,
    first: tuple[float, float | None],
    second: tuple[float | None, float | None],
) -> NewCalibration:
    q = _pick_quantity(target, read, quantity, interactive=False)
    ref1, raw1 = first
    ref2, raw2 = second
    if raw1 is None:
        raw1 = _take(read, q, samples, target.name)
    points = [Point(raw1, ref1)]
    if ref2 is not None:
        if raw2 is None:
            console.print(
                f"Point 1: {target.name}.{q} read {raw1:.6g} (reference {ref1:g}).\n"
                f"Bring the sensor to reference point 2 ({ref2:g}), let it settle, then press Enter."
            )
            if not sys.stdin.readline():
                fail("no Enter on stdin for point 2: give --reading2, or run it where it can be confirmed", 1)
            raw2 = _take(read, q, samples, target.name)
        points.append(Point(raw2, ref2))
    try:
        new = _new(target, q, points, current, meta)
    except CalibrationInputError as exc:
        fail(f"not saved: {exc}", 1)
    console.print(_summary(new, current))
    return new


def _confirm(yes: bool, interactive: bool) -> bool:
    if yes:
        return True
    if interactive or sys.stdin.isatty():
        from rich.prompt import Confirm

        return Confirm.ask("Save this calibration?", default=False, console=console)
    console.print("Save this calibration? [y/N] ", end="")
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def _wizard(
    target: SensorSettings,
    read: Reader,
    current: ActiveCalibrations,
    quantity: str | None,
    samples: int,
    meta: _Meta,
) -> NewCalibration | None:
    from rich.prompt import Confirm, Prompt

    console.rule(f"[bold]Calibrating {escape(target.name)}[/] ({escape(target.driver)})")
    console.print("Ctrl-C at any point cancels; nothing is saved before you confirm at the end.")
    q = _pick_quantity(target, read, quantity, interactive=True)
    record = current.for_sensor(target.name).get(q)
    if record is not None:
        console.print(
            f"In effect now: calibration #{record.id} (gain {record.gain:.6g}, offset {record.offset:+.6g})."
        )
    points: list[Point] = []
    for n in (1, 2):
        if n == 2 and not Confirm.ask(
            "Calibrate a second point too (corrects gain as well as offset)?", default=False, console=console
        ):
            break
        console.print(
            f"\n[bold]Point {n}[/]: put the sensor and the reference instrument together "
            "and wait until the readings are steady; then press Enter."
        )
        raw = _live_until_enter(read, target.name, q, record.correction if record else Correction(), samples)
        reference = _ask_reference(n, points)
        points.append(Point(raw, reference))
    if meta.instrument is None:
        meta.instrument = (
            Prompt.ask("Reference instrument (model, serial)", default="", console=console) or None
        )
    if meta.note is None:
        meta.note = Prompt.ask("Note (optional)", default="", console=console) or None
    try:
        new = _new(target, q, points, current, meta)
    except CalibrationInputError as exc:
        console.print(f"[red]Cannot calibrate: {escape(str(exc))}[/]")
        return None
    console.print(_summary(new, current))
    return new


def _ask_reference(n: int, points: list[Point]) -> float:
    from rich.prompt import FloatPrompt

    while True:
        value = FloatPrompt.ask(f"Reference value at point {n}", console=console)
        if value != value or value in (float("inf"), float("-inf")):
            console.print("[red]Enter a finite number.[/]")
        elif points and value == points[0].reference:
            console.print(
                f"[red]Point 2 must differ from point 1 ({value:g}); bring the sensor to another condition.[/]"
            )
        else:
            return value


def _live_until_enter(
    read: Reader, sensor: str, quantity: str, correction: Correction, samples: int
) -> float:
    """Show live readings until Enter; returns the mean of the last ``samples`` raw readings."""
    from rich.live import Live

    recent: deque[float] = deque(maxlen=samples)
    last_error = ""
    # Drop anything typed before the readings were on screen.
    while select.select([sys.stdin], [], [], 0)[0]:
        if not sys.stdin.readline():
            break
    with Live(console=console, auto_refresh=False, transient=False) as live:
        while True:
            try:
                recent.append(read()[quantity])
                last_error = ""
            except (DriverError, KeyError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            live.update(_live_table(sensor, quantity, recent, correction, last_error), refresh=True)
            if select.select([sys.stdin], [], [], 0.5)[0]:
                sys.stdin.readline()
                if recent:
                    return statistics.fmean(recent)


def _live_table(
    sensor: str, quantity: str, recent: deque[float], correction: Correction, error: str
) -> Table:
    from rich.table import Table

    table = Table(title=f"{sensor}.{quantity} — live (Enter when steady)")
    for name in ("raw", "reported now", f"mean of last {len(recent)}", "spread"):
        table.add_column(name, justify="right")
    if recent:
        last = recent[-1]
        spread = max(recent) - min(recent)
        table.add_row(
            f"{last:.6g}", f"{correction.apply(last):.6g}", f"{statistics.fmean(recent):.6g}", f"{spread:.3g}"
        )
    if error:
        table.caption = f"[red]{escape(error)}[/]"
    return table


def _summary(new: NewCalibration, current: ActiveCalibrations) -> Table:
    from rich.table import Table

    corr = new.correction
    table = Table(
        title=f"{new.sensor}.{new.quantity}: {new.method} correction  gain {corr.gain:.6g}  offset {corr.offset:+.6g}"
    )
    for name in (
        "point",
        "reference",
        "raw reading",
        "before (as found)",
        "error before",
        "after (as left)",
        "error after",
    ):
        table.add_column(name, justify="right")
    for i, (p, found, left) in enumerate(zip(new.points, new.as_found, new.as_left, strict=True), start=1):
        table.add_row(
            str(i),
            f"{p.reference:.6g}",
            f"{p.reading:.6g}",
            f"{found:.6g}",
            f"{found - p.reference:+.3g}",
            f"{left:.6g}",
            f"{left - p.reference:+.3g}",
        )
    return table


def _report_saved(saved: CalibrationRecord) -> None:
    console.print(
        f"[green]Saved calibration #{saved.id}[/] for {saved.sensor}.{saved.quantity}. "
        "A running daemon applies it within a few seconds (no restart); "
        f"undo with: edge-agent calibration rollback {saved.sensor}"
    )


def _show_after(read: Reader, sensor: str, saved: CalibrationRecord) -> None:
    from rich.table import Table

    active = ActiveCalibrations([saved])
    table = Table(title=f"{sensor}: readings with the new correction")
    table.add_column("raw", justify="right")
    table.add_column("corrected", justify="right")
    for _ in range(3):
        try:
            raw = read()[saved.quantity]
        except (DriverError, KeyError):
            continue
        corrected, _ = active.apply(sensor, {saved.quantity: raw})
        table.add_row(f"{raw:.6g}", f"{corrected[saved.quantity]:.6g}")
    console.print(table)
