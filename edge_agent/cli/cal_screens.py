"""What the calibration wizard shows: the live readings, the fit with its points, the as-left check.

Every table fits 80 columns: long facts go on lines of their own above a table rather than
into its title (a title wraps into the table's width), and numbers carry their unit in the
column header.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from edge_agent.calibration import Correction, NewCalibration
from edge_agent.calibration.fit import Fit
from edge_agent.calibration.steady import Steadiness
from edge_agent.cli.cal_plan import tidy
from edge_agent.cli.common import escape

if TYPE_CHECKING:
    from rich.console import RenderableType


def num(value: float) -> str:
    """A measured value: up to 7 significant digits, no float noise."""
    return f"{tidy(value):.7g}"


def err(value: float, scale: float = 1.0) -> str:
    """A signed error; what is float noise next to ``scale`` (``-4.44e-16``) shows as 0."""
    if abs(value) < 1e-9 * max(1.0, abs(scale)):
        value = 0.0
    return f"{tidy(value):+.3g}"


def with_unit(text: str, unit: str) -> str:
    return f"{text} {unit}" if unit else text


def live_view(
    recent: Sequence[float],
    correction: Correction,
    steady: Steadiness,
    unit: str,
    error: str,
    enter_pressed: bool,
) -> RenderableType:
    """The live table and, under it, whether the reading is steady and what Enter does."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False)
    for name in ("raw", "reported now", f"mean of {len(recent)}", "spread"):
        table.add_column(with_unit(name, unit), justify="right")
    if recent:
        last = recent[-1]
        spread = "…" if steady.spread != steady.spread else f"{tidy(steady.spread):.3g}"
        table.add_row(num(last), num(correction.apply(last)), num(sum(recent) / len(recent)), spread)
    limit = f"{tidy(steady.limit):.3g}"
    spread_now = "" if steady.spread != steady.spread else f"spread {tidy(steady.spread):.3g} > {limit}"
    if steady.steady:
        state = Text("✓ steady", "green")
        state.append(" — taking it" if enter_pressed else " — press Enter to take this point", "bold")
    else:
        state = Text(f"… settling ({spread_now or 'filling the window'})", "yellow")
        state.append(
            " — Enter pressed: taken once steady" if enter_pressed else " — Enter when steady", "bold"
        )
    parts: list[RenderableType] = [table, state]
    if error:
        parts.append(Text(error, "red"))
    return Group(*parts)


def steady_rule(window: int, noise: tuple[str, float] | None, unit: str) -> str:
    """One line saying what "steady" means here, printed once above the live readings."""
    if noise is not None:
        name, sigma = noise
        return (
            f"Steady: the last {window} readings within {with_unit(f'{4 * sigma:.3g}', unit)} "
            f"(4 × σ {sigma:g} allowed by {name})."
        )
    return f"Steady: the last {window} readings within 4 × the noise σ estimated from them."


def summary(new: NewCalibration, result: Fit, unit: str) -> RenderableType:
    """The fit, its uncertainty and, per point, as found / as left / residual."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    corr = new.correction
    n = len(new.points)
    how = {"offset": "offset (one point)", "linear": "gain and offset"}[new.method]
    if n > 2:
        how = f"gain and offset, least squares through {n} points"
    lines = [
        Text.assemble(("Fit: ", "bold"), how),
        Text(f"  gain {corr.gain:.6g}, offset {with_unit(err(corr.offset), unit)}"),
    ]
    if new.uncertainty is not None:
        lines.append(
            Text(
                f"  expanded uncertainty ±{with_unit(f'{new.uncertainty:.2g}', unit)} (k = 2): reference "
                f"±{new.reference_uncertainty:.2g}, sensor σ ≤ {max(new.spreads, default=0.0):.2g}"
                + (f", fit scatter {result.residual_std:.2g}" if result.residual_std else "")
            )
        )
    else:
        lines.append(Text("  uncertainty: not determined (no reference uncertainty given)", "yellow"))
    table = Table()
    for name in ("pt", with_unit("reference", unit), "raw", "as found", "error", "as left", "residual"):
        table.add_column(name, justify="right")
    for i, (p, found, left) in enumerate(zip(new.points, new.as_found, new.as_left, strict=True), start=1):
        scale = abs(p.reference)
        table.add_row(
            str(i),
            num(p.reference),
            num(p.reading),
            num(found),
            err(found - p.reference, scale),
            num(left),
            err(result.residuals[i - 1], scale),
        )
    return Group(*lines, table)


def as_left_line(reference: float, reported: float, unit: str, uncertainty: float | None) -> str:
    error = reported - reference
    verdict = ""
    if uncertainty is not None:
        verdict = " — within" if abs(error) <= uncertainty else " — [red]outside[/]"
        verdict += f" ±{uncertainty:.2g}"
    return (
        f"As left: reference {with_unit(num(reference), escape(unit))}, the device reports "
        f"{with_unit(num(reported), escape(unit))}, error {err(error, reference)}{verdict}"
    )
