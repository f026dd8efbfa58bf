"""The interactive calibration wizard (``edge-agent calibrate SENSOR`` at a terminal).

Steps: the quantity (default: the one a ``calibration_due`` test names, else the
driver's main one); who calibrates and for how long it is valid (defaults: the login
user, and what the config's ``calibration_due`` test requires); the reference
instrument, its certificate number and stated uncertainty, the conditions; then point
by point the live readings until they are steady (:mod:`edge_agent.calibration.steady`)
and the reference value; the fit with each point's residual and the uncertainty.
Nothing is written before the technician confirms (the caller saves); Ctrl-C at any
step leaves the history as it was.  After saving, :func:`as_left_check` re-reads the
sensor against the reference with the new correction.
"""

from __future__ import annotations

import contextlib
import math
import select
import statistics
import sys
import termios
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from edge_agent.calibration import ActiveCalibrations, CalibrationInputError, Correction, NewCalibration
from edge_agent.calibration.steady import MIN_WINDOW, min_separation, spread_std, steadiness
from edge_agent.cli.cal_plan import Measured, Meta, build, configured_noise, due_test, tidy
from edge_agent.cli.cal_screens import live_view, num, steady_rule, summary, with_unit
from edge_agent.cli.common import console, escape
from edge_agent.settings import SensorSettings, Settings
from edge_agent.units import parse_duration
from edge_drivers.api import DriverError

Reader = Callable[[], Mapping[str, float]]
POLL_S = 0.5
MAX_POINTS = 10


@dataclass
class Taken:
    """A point's reading: the mean of the steady window, its spread (σ) and the noise σ used."""

    mean: float
    spread: float
    noise: float


@dataclass
class Job:
    settings: Settings
    target: SensorSettings
    read: Reader
    quantity: str
    unit: str
    current: ActiveCalibrations
    window: int


def ask_meta(job: Job, meta: Meta) -> None:
    """Fill in what the flags did not give."""
    from rich.prompt import Prompt

    unit = job.unit
    if meta.technician is None:
        meta.technician = Prompt.ask("Who is calibrating", default=meta_user(), console=console) or None
    if meta.validity_s is None:
        due = due_test(job.settings, job.target.name, job.quantity)
        default = f"{due[1] / 86400:g}d" if due else "365d"
        why = f" ({due[0]} requires {default})" if due else ""
        while meta.validity_s is None:
            answer = Prompt.ask(f"Valid for{why}", default=default, console=console)
            try:
                value = parse_duration(answer)
            except ValueError as exc:
                console.print(f"[red]{escape(str(exc))}[/]")
                continue
            if value > 0:
                meta.validity_s = value
            else:
                console.print("[red]The validity must be positive.[/]")
    if meta.instrument is None:
        meta.instrument = (
            Prompt.ask(
                "Reference instrument (model, serial)", default="", show_default=False, console=console
            )
            or None
        )
    if meta.certificate is None:
        meta.certificate = (
            Prompt.ask("Its calibration certificate number", default="", show_default=False, console=console)
            or None
        )
    if meta.reference_uncertainty is None:
        while True:
            text = Prompt.ask(
                f"Its stated uncertainty, ± {unit or 'units'} at k = 2 (blank: not known)",
                default="",
                show_default=False,
                console=console,
            )
            if not text.strip():
                break
            try:
                value = float(text)
            except ValueError:
                value = math.nan
            if math.isfinite(value) and value >= 0:
                meta.reference_uncertainty = value
                break
            console.print("[red]Enter a number of zero or more, or leave it blank.[/]")
    if meta.conditions is None:
        meta.conditions = (
            Prompt.ask(
                "Conditions (e.g. 22 °C, 45 %RH, in the cabinet)",
                default="",
                show_default=False,
                console=console,
            )
            or None
        )


def meta_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def measure_points(job: Job, meta: Meta) -> tuple[NewCalibration, Measured] | None:
    """Point after point until the technician stops; the fitted calibration (None: refused)."""
    from rich.prompt import Confirm

    record = job.current.for_sensor(job.target.name).get(job.quantity)
    correction = record.correction if record else Correction()
    measured = Measured()
    noise = 0.0
    while len(measured.points) < MAX_POINTS:
        n = len(measured.points) + 1
        if n == 2 and not Confirm.ask(
            "Add a second point (corrects the gain as well as the offset)?", default=False, console=console
        ):
            break
        if n > 2 and not Confirm.ask(
            f"Add point {n} (a least-squares fit; each point's residual is shown)?",
            default=False,
            console=console,
        ):
            break
        if n == 1:
            console.print(
                "\n[bold]Point 1[/]: put the sensor and the reference instrument together. The reading "
                "is taken once it is steady."
            )
        elif n == 2:
            apart = min_separation(noise) if noise > 0 else 0.0
            distance = f" at least {with_unit(f'{apart:.2g}', job.unit)} away from point 1" if apart else ""
            console.print(
                f"\n[bold]Point 2[/]: move the sensor and the reference to a different condition{distance} "
                "(with this sensor's noise that fixes the gain to 1 %; wider is better: ideally the two "
                "ends of the range you measure in). The reading is taken once it is steady."
            )
        else:
            console.print(
                f"\n[bold]Point {n}[/]: move the sensor and the reference to another condition, between or "
                "beyond the others (a point out of line with them is refused). The reading is taken once "
                "it is steady."
            )
        taken = live_until_steady(job, correction)
        noise = max(noise, taken.noise)
        # Only a second point has to be far from the first: further points check the line.
        apart = min_separation(noise) if n == 2 and noise > 0 else 0.0
        reference = ask_reference(n, measured, job.unit, apart)
        measured.add(taken.mean, reference, taken.spread)
        console.print(
            f"Point {n}: reading {with_unit(num(taken.mean), job.unit)} (σ {taken.spread:.2g}), "
            f"reference {with_unit(num(reference), job.unit)}"
        )
    if meta.note is None:
        from rich.prompt import Prompt

        meta.note = Prompt.ask("Note (optional)", default="", show_default=False, console=console) or None
    try:
        new, result = build(job.target.name, job.quantity, measured, job.current, meta, noise=noise)
    except CalibrationInputError as exc:
        console.print(f"[red]Cannot calibrate: {escape(str(exc))}[/]")
        return None
    console.print(summary(new, result, job.unit))
    return new, measured


def ask_reference(n: int, measured: Measured, unit: str, apart: float) -> float:
    from rich.prompt import FloatPrompt

    while True:
        value = FloatPrompt.ask(
            f"Reference value at point {n}{f' ({unit})' if unit else ''}", console=console
        )
        if not math.isfinite(value):
            console.print("[red]Enter a finite number.[/]")
            continue
        same = [i for i, p in enumerate(measured.points, 1) if p.reference == value]
        if same:
            console.print(
                f"[red]Point {n} must differ from point {same[0]} ({value:g}); bring the sensor to another "
                "condition.[/]"
            )
            continue
        close = min((abs(p.reference - value) for p in measured.points), default=math.inf)
        if apart and close < apart:
            console.print(
                f"[yellow]Only {with_unit(f'{close:.2g}', unit)} from another point (suggested ≥ {apart:.2g}): "
                "the gain will be less certain.[/]"
            )
        return value


def _drain_stdin() -> None:
    """Drop anything typed before the readings were on screen."""
    while select.select([sys.stdin], [], [], 0)[0]:
        if not sys.stdin.readline():
            break


def live_until_steady(job: Job, correction: Correction) -> Taken:
    """Live readings until they are steady *and* Enter was pressed (in either order)."""
    from rich.live import Live

    noise = configured_noise(job.settings, job.target.name, job.quantity)
    console.print(steady_rule(max(job.window, MIN_WINDOW), noise, job.unit))
    sigma = noise[1] if noise else None

    window = max(job.window, MIN_WINDOW)
    recent: deque[float] = deque(maxlen=window)
    error = ""
    enter = False
    _drain_stdin()
    with _no_echo(), Live(console=console, auto_refresh=False, transient=False) as live:
        while True:
            try:
                recent.append(job.read()[job.quantity])
                error = ""
            except (DriverError, KeyError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            state = steadiness(recent, window, sigma)
            if enter and state.steady:
                live.update(live_view(recent, correction, state, job.unit, error, True), refresh=True)
                return Taken(statistics.fmean(recent), spread_std(recent), state.noise)
            live.update(live_view(recent, correction, state, job.unit, error, enter), refresh=True)
            if select.select([sys.stdin], [], [], POLL_S)[0]:
                sys.stdin.readline()
                enter = True


@contextlib.contextmanager
def _no_echo() -> Iterator[None]:
    """The terminal does not echo Enter while the live readings are redrawn in place: an
    echoed newline moves the cursor under rich's feet and the table's header is drawn twice."""
    try:
        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
    except (termios.error, ValueError, OSError):
        yield
        return
    quiet = list(saved)
    quiet[3] &= ~termios.ECHO  # lflags
    termios.tcsetattr(fd, termios.TCSANOW, quiet)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def as_left_check(job: Job, correction: Correction, last_reference: float) -> tuple[float, Taken, float]:
    """Re-read the sensor with the saved correction against the reference: (reference, raw, reported)."""
    from rich.prompt import FloatPrompt

    console.print(
        "\n[bold]As-left check[/]: leave the sensor and the reference where they are; the sensor is "
        "read again with the new correction."
    )
    taken = live_until_steady(job, correction)
    reference = FloatPrompt.ask(
        f"Reference value now{f' ({job.unit})' if job.unit else ''}", default=last_reference, console=console
    )
    return reference, taken, tidy(correction.apply(taken.mean))
