"""``edge-agent calibrate SENSOR``: fit and save a correction against a reference instrument.

Interactive (a technician at the cabinet): the wizard of :mod:`.cal_wizard` — who, how
long it is valid, the reference instrument; point by point the live readings until they
are steady and the reference value; the fit with residuals and uncertainty; confirm,
save; then the as-left check re-reads the sensor against the reference and records what
it measured.  Ctrl-C before the confirmation leaves everything as it was: nothing is
written before it.

Non-interactive (scripts): ``--quantity Q --point REF[=READING]``, once per point, as
many points as the wizard takes (:mod:`.cal_points`): one fits an offset, two a line,
three or more the least-squares line with each point's residual shown, refused when a
point is out of line with the others.  A point without its reading is measured now (the
mean of ``--samples`` readings); before each later one the tool asks the caller to bring
the sensor there and press Enter (a line on stdin).  ``--reference V [--reading R]
[--reference2 V2 [--reading2 R2]]`` is the same for one or two points.  ``--yes`` saves
without asking.  Exit status: 0 saved, 1 not saved (declined, bad fit), 2 bad usage,
130 interrupted.
"""

from __future__ import annotations

import statistics
import sys
from datetime import UTC, datetime
from typing import Annotated

import typer

from edge_agent.calibration import (
    ActiveCalibrations,
    CalibrationInputError,
    CalibrationRecord,
    CalibrationStore,
    NewCalibration,
)
from edge_agent.calibration.steady import spread_std
from edge_agent.cli.cal_common import calibration_store, fail, known_sensor, opened_sensors
from edge_agent.cli.cal_plan import (
    Measured,
    Meta,
    build,
    configured_noise,
    declared_order,
    default_validity,
    due_quantity,
    tidy,
)
from edge_agent.cli.cal_points import PointSyntaxError, ScriptedPoint, parse_point
from edge_agent.cli.cal_screens import as_left_line, summary
from edge_agent.cli.cal_wizard import Job, Reader, as_left_check, ask_meta, measure_points, meta_user
from edge_agent.cli.common import DEFAULT_CONFIG, ConfigOption, console, escape, load_config
from edge_agent.settings import SensorSettings, Settings
from edge_agent.units import parse_duration
from edge_drivers.api import DriverError

EX_INTERRUPTED = 130


def calibrate(
    sensor: Annotated[str, typer.Argument(help="Sensor name from the config.", show_default=False)],
    quantity: Annotated[
        str | None, typer.Option("--quantity", "-q", help="Quantity to calibrate, e.g. temperature_c.")
    ] = None,
    points: Annotated[
        list[str] | None,
        typer.Option(
            "--point",
            metavar="POINT",
            help="REF, or REF=READING with the sensor's raw reading taken beforehand (e.g. 20=20.31); "
            "once per point: 3 or more are fitted by least squares.",
            show_default=False,
        ),
    ] = None,
    reference: Annotated[
        float | None,
        typer.Option("--reference", metavar="VALUE", help="Reference value at point 1 (non-interactive)."),
    ] = None,
    reference2: Annotated[
        float | None,
        typer.Option("--reference2", metavar="VALUE", help="Reference value at point 2 (two-point)."),
    ] = None,
    reading: Annotated[
        float | None,
        typer.Option(
            "--reading", metavar="VALUE", help="Sensor reading (raw) at point 1, instead of measuring now."
        ),
    ] = None,
    reading2: Annotated[
        float | None, typer.Option("--reading2", metavar="VALUE", help="Sensor reading (raw) at point 2.")
    ] = None,
    samples: Annotated[
        int, typer.Option("--samples", metavar="N", min=1, max=1000, help="Readings averaged per point.")
    ] = 5,
    instrument: Annotated[
        str | None, typer.Option("--instrument", metavar="TEXT", help="Reference instrument (model, serial).")
    ] = None,
    certificate: Annotated[
        str | None,
        typer.Option(
            "--reference-certificate", metavar="NUMBER", help="The reference instrument's certificate number."
        ),
    ] = None,
    reference_uncertainty: Annotated[
        float | None,
        typer.Option(
            "--reference-uncertainty",
            metavar="U",
            min=0,
            help="The reference's stated expanded uncertainty (k = 2), in the quantity's unit.",
        ),
    ] = None,
    conditions: Annotated[
        str | None,
        typer.Option("--conditions", metavar="TEXT", help='Ambient conditions, e.g. "22 °C, 45 %RH".'),
    ] = None,
    technician: Annotated[
        str | None,
        typer.Option("--technician", metavar="NAME", help="Who calibrates (default: your user name)."),
    ] = None,
    note: Annotated[
        str | None, typer.Option("--note", metavar="TEXT", help="Free text kept in the history.")
    ] = None,
    valid_for: Annotated[
        str | None,
        typer.Option(
            "--valid-for",
            metavar="AGE",
            help='Calibration expires after this, e.g. "180d" (default: what the config\'s '
            "calibration_due test requires, else 365d).",
        ),
    ] = None,
    as_left: Annotated[
        float | None,
        typer.Option(
            "--as-left",
            metavar="VALUE",
            help="After saving, measure the sensor again (--samples readings) and record the as-left "
            "against this reference value (scripts; the wizard asks).",
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Save without asking.")] = False,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Calibrate a sensor against a reference: a wizard, or --point (or --reference) for scripts."""
    settings = load_config(config)
    target = known_sensor(settings, sensor)
    validity: float | None = None
    if valid_for is not None:
        try:
            validity = parse_duration(valid_for)
        except ValueError as exc:
            fail(f"--valid-for: {exc}")
        if validity <= 0:
            fail("--valid-for must be positive")
    scripted = _scripted_points(points or [], (reference, reading), (reference2, reading2))
    interactive = not scripted
    if interactive and as_left is not None:
        fail("--as-left is for scripts (with --point or --reference); the wizard measures the as-left itself")
    if interactive and not sys.stdin.isatty():
        fail("the wizard needs a terminal; in scripts use --quantity Q --point REF[=READING] ... [--yes]")
    meta = Meta(technician, validity, instrument, certificate, reference_uncertainty, conditions, note)
    saved: CalibrationRecord | None = None
    try:
        with opened_sensors([target]) as (opened, problems, hardware):
            if target.name not in opened:
                fail(f"cannot open {target.name}: {problems.get(target.name)}", 1)
            read = opened[target.name].driver.read
            reported = declared_order(hardware, target, _reported(target, read))
            with calibration_store(settings) as store:
                current = ActiveCalibrations(store.current(target.name))
                if interactive:
                    console.rule(f"[bold]Calibrating {escape(target.name)}[/] ({escape(target.driver)})")
                    console.print(
                        "Ctrl-C at any point cancels; nothing is saved before you confirm at the end."
                    )
                units = {name: hardware.registry.unit(target.driver, name) for name in reported}
                q = _pick_quantity(settings, target, units, quantity, interactive)
                job = Job(settings, target, read, q, units[q], current, samples)
                new = _wizard(job, meta) if interactive else _scripted(job, meta, scripted)
                if new is None or not _confirm(yes, interactive):
                    console.print("Not saved; the calibration in effect is unchanged.")
                    raise typer.Exit(1)
                saved = store.save(new)
                _report_saved(saved)
                if interactive:
                    _as_left(job, store, saved)
                elif as_left is not None:
                    _scripted_as_left(job, store, saved, as_left)
    except KeyboardInterrupt:
        if saved is None:
            console.print(
                "\n[yellow]Cancelled: nothing was saved; the calibration in effect is unchanged.[/]"
            )
        else:
            console.print(
                f"\n[yellow]Cancelled: calibration #{saved.id} stays saved; no as-left check was recorded.[/]"
            )
        raise typer.Exit(EX_INTERRUPTED) from None


def _reported(target: SensorSettings, read: Reader) -> list[str]:
    try:
        return list(read())
    except DriverError as exc:
        fail(f"{target.name}: {type(exc).__name__}: {exc}", 1)


def _take(job: Job, samples: int) -> tuple[float, float]:
    """The mean of ``samples`` readings and their spread (standard deviation)."""
    values: list[float] = []
    for _ in range(samples):
        try:
            got = job.read()
        except DriverError as exc:
            fail(f"{job.target.name}: {type(exc).__name__}: {exc}", 1)
        if job.quantity not in got:
            fail(
                f"{job.target.name} does not report {job.quantity!r} now "
                f"(it reports: {', '.join(sorted(got)) or 'nothing'})",
                1,
            )
        values.append(got[job.quantity])
    return statistics.fmean(values), spread_std(values)


def _pick_quantity(
    settings: Settings, target: SensorSettings, units: dict[str, str], quantity: str | None, interactive: bool
) -> str:
    reported = list(units)
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

    due = due_quantity(settings, target.name)
    default = due if due in reported else reported[0]  # the driver's main quantity
    console.print(
        "Quantities: "
        + ", ".join(f"{name} ({escape(unit)})" if unit else name for name, unit in units.items())
    )
    return Prompt.ask(
        "Quantity to calibrate", choices=reported, show_choices=False, default=default, console=console
    )


def _scripted_points(
    points: list[str], first: tuple[float | None, float | None], second: tuple[float | None, float | None]
) -> list[ScriptedPoint]:
    """The points of a scripted calibration, from ``--point`` or the one/two-point flags
    (none: the wizard); usage mistakes exit 2."""
    (reference, reading), (reference2, reading2) = first, second
    if points:
        if any(v is not None for v in (reference, reading, reference2, reading2)):
            fail("--point replaces --reference, --reading, --reference2 and --reading2: use one form")
        try:
            return [parse_point(p) for p in points]
        except PointSyntaxError as exc:
            fail(str(exc))
    if reference is None:
        if reference2 is not None or reading is not None or reading2 is not None:
            fail(
                "--reference2, --reading and --reading2 need --reference (or leave them all out for the wizard)"
            )
        return []
    if reading2 is not None and reference2 is None:
        fail("--reading2 needs --reference2")
    if reference2 is not None and reference == reference2:
        fail(f"the two reference points are identical ({reference:g}); use two different conditions")
    return [(reference, reading)] + ([(reference2, reading2)] if reference2 is not None else [])


def _scripted(job: Job, meta: Meta, points: list[ScriptedPoint]) -> NewCalibration:
    if meta.technician is None:
        meta.technician = meta_user() or None
    if meta.validity_s is None:
        meta.validity_s = default_validity(job.settings, job.target.name, job.quantity)
    measured = Measured()
    for n, (ref, raw) in enumerate(points, 1):
        spread = 0.0  # a reading given on the command line has no spread we know of
        if raw is None:
            if n > 1:
                console.print(
                    f"Point {n - 1}: {job.target.name}.{job.quantity} read {measured.points[-1].reading:.6g} "
                    f"(reference {measured.points[-1].reference:g}).\n"
                    f"Bring the sensor to reference point {n} ({ref:g}), let it settle, then press Enter."
                )
                if not sys.stdin.readline():
                    fail(
                        f"no Enter on stdin for point {n}: give its reading (--point {ref:g}=READING), "
                        "or run it where it can be confirmed",
                        1,
                    )
            raw, spread = _take(job, job.window)
        measured.add(raw, ref, spread)
    # The scatter a point may show without being out of line: the noise the config's noise
    # test declares normal for this quantity (the wizard measures it; a script cannot).
    declared = configured_noise(job.settings, job.target.name, job.quantity)
    try:
        new, result = build(
            job.target.name, job.quantity, measured, job.current, meta, noise=declared[1] if declared else 0.0
        )
    except CalibrationInputError as exc:
        fail(f"not saved: {exc}", 1)
    console.print(summary(new, result, job.unit))
    return new


def _confirm(yes: bool, interactive: bool) -> bool:
    if yes:
        return True
    if interactive or sys.stdin.isatty():
        from rich.prompt import Confirm

        return Confirm.ask("Save this calibration?", default=False, console=console)
    console.print("Save this calibration? [y/N] ", end="", markup=False)  # [y/N] is text
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def _wizard(job: Job, meta: Meta) -> NewCalibration | None:
    record = job.current.for_sensor(job.target.name).get(job.quantity)
    if record is not None:
        u = f" {job.unit}" if job.unit else ""
        console.print(
            f"In effect now: calibration #{record.id} (gain {record.gain:.6g}, offset {record.offset:+.6g}{u}"
            + (f", ±{record.uncertainty:.2g}{u} at k = 2" if record.uncertainty is not None else "")
            + f", by {record.technician or 'unknown'}, expires {_day(record.expires_at)})."
        )
    ask_meta(job, meta)
    got = measure_points(job, meta)
    return None if got is None else got[0]


def _day(ts: float | None) -> str:
    return "never" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def _report_saved(saved: CalibrationRecord) -> None:
    console.print(
        f"[green]Saved calibration #{saved.id}[/] for {saved.sensor}.{saved.quantity}. "
        "A running daemon applies it within a few seconds (no restart); "
        f"undo with: edge-agent calibration rollback {saved.sensor}"
    )


def _as_left(job: Job, store: CalibrationStore, saved: CalibrationRecord) -> None:
    reference, taken, reported = as_left_check(job, saved.correction, saved.points[-1].reference)
    store.record_as_left(
        saved.id, reference=reference, reading=taken.mean, reported=reported, spread=taken.spread
    )
    console.print(
        as_left_line(reference, reported, job.unit, saved.uncertainty) + f" (kept with #{saved.id})."
    )


def _scripted_as_left(job: Job, store: CalibrationStore, saved: CalibrationRecord, reference: float) -> None:
    raw, spread = _take(job, job.window)
    reported = tidy(saved.correction.apply(raw))
    store.record_as_left(saved.id, reference=reference, reading=raw, reported=reported, spread=spread)
    console.print(
        as_left_line(reference, reported, job.unit, saved.uncertainty) + f" (kept with #{saved.id})."
    )
