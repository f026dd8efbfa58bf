"""``calibrate --point REFERENCE[=READING]``: the scripted form's points, as many as the wizard takes.

``20`` is a reference value the tool measures the sensor against now; ``20=20.31`` also
gives the sensor's raw reading there (taken beforehand, e.g. by a bath controller's
script).  One point fits an offset, two a line, three or more the least-squares line with
each point's residual (the same fit as the wizard: :mod:`edge_agent.calibration.fit`).
"""

from __future__ import annotations

import math

ScriptedPoint = tuple[float, float | None]
"""(reference, raw reading or None: measure it now)."""


class PointSyntaxError(ValueError):
    """A ``--point`` that is not ``REFERENCE`` or ``REFERENCE=READING`` with finite numbers."""


def parse_point(text: str) -> ScriptedPoint:
    """``"20"`` → ``(20.0, None)``; ``"20=20.31"`` → ``(20.0, 20.31)``; anything else raises."""
    reference, sep, reading = text.partition("=")
    value = _number(reference, "reference", text)
    return value, (_number(reading, "reading", text) if sep else None)


def _number(part: str, what: str, text: str) -> float:
    try:
        value = float(part)
    except ValueError:
        raise PointSyntaxError(
            f"--point {text!r}: the {what} {part.strip()!r} is not a number "
            "(write REFERENCE, or REFERENCE=READING, e.g. 20 or 20=20.31)"
        ) from None
    if not math.isfinite(value):
        raise PointSyntaxError(f"--point {text!r}: the {what} must be a finite number")
    return value
