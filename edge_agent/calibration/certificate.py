"""A one-page calibration certificate as a PDF, from a calibration record.

What an auditor looks for (ISO/IEC 17025 §7.8 in spirit): who and what was calibrated
(device, sensor, quantity and unit), against what (the reference instrument, its own
certificate number and stated uncertainty), under which conditions, the values as found
and as left at each point, the correction applied and its fit, the expanded uncertainty
(k = 2), the technician, the date, until when it is valid, and the calibration id that
every corrected reading carries.

The PDF is drawn with fpdf2: pure Python, no system libraries (unlike the Cairo/Pango
stack of HTML-to-PDF tools), small, maintained, and its wheels install on a Pi.  It is
the optional extra ``edge-agent[certificate]``: a gateway that never prints a
certificate does not carry it, and without it :func:`render` raises
:class:`CertificateError` with the one line to install it.  fpdf2's built-in fonts
cover Latin-1 only, so text is folded to it (``≤`` → ``<=``) rather than embedding a
font file.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from edge_agent.calibration.store import AsLeftCheck, CalibrationRecord
from edge_agent.errors import EdgeAgentError

INSTALL_HINT = "pip install 'edge-agent[certificate]' (it adds fpdf2)"


class CertificateError(EdgeAgentError):
    """The certificate cannot be made (the PDF library is missing, or the record is no calibration)."""


@dataclass(frozen=True)
class CertificateData:
    """Everything on the certificate besides the record itself."""

    device_id: str
    device_name: str | None
    device_location: str | None
    sensor: str
    driver: str
    connection: str
    """Where the sensor is attached, e.g. "I2C bus 1, address 0x76"."""
    unit: str
    record: CalibrationRecord
    as_left_checks: Sequence[AsLeftCheck]
    issued_at: float


_FOLD = {"≤": "<=", "≥": ">=", "—": "-", "–": "-", "−": "-", "…": "...", "·": "x", "→": "->", "σ": "s"}


def latin1(text: str) -> str:
    """``text`` in what the PDF's built-in fonts can show."""
    for a, b in _FOLD.items():
        text = text.replace(a, b)
    return text.encode("latin-1", "replace").decode("latin-1")


def _date(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{float(f'{value:.10g}'):.7g}"


def _err(value: float) -> str:
    return f"{0.0 if abs(value) < 1e-9 else float(f'{value:.10g}'):+.3g}"


def fields(data: CertificateData) -> list[tuple[str, str]]:
    """The certificate's label/value lines, in order (also what a test looks for)."""
    r = data.record
    u = f" {data.unit}" if data.unit else ""
    n = len(r.points)
    method = "offset (one point)" if r.method == "offset" else f"gain and offset through {n} points"
    if n > 2:
        method += " (least squares)"
    return [
        ("Calibration id", f"#{r.id} (carried by every corrected reading as cal = {r.id})"),
        ("Device", " / ".join(x for x in (data.device_id, data.device_name, data.device_location) if x)),
        ("Sensor", f"{data.sensor} ({data.driver}, {data.connection})"),
        ("Quantity", f"{r.quantity}" + (f" [{data.unit}]" if data.unit else "")),
        ("Reference instrument", r.reference_instrument or "not recorded"),
        ("Reference certificate", r.reference_certificate or "not recorded"),
        (
            "Reference uncertainty",
            "not recorded"
            if r.reference_uncertainty is None
            else f"± {r.reference_uncertainty:g}{u} (k = 2)",
        ),
        ("Conditions", r.conditions or "not recorded"),
        ("Method", method),
        (
            "Correction",
            f"corrected = {r.gain:.8g} x raw {'+' if r.offset >= 0 else '-'} {abs(r.offset):.8g}{u}",
        ),
        (
            "Expanded uncertainty",
            "not determined" if r.uncertainty is None else f"± {r.uncertainty:.2g}{u} (k = 2, about 95 %)",
        ),
        ("Technician", r.technician or "not recorded"),
        ("Calibrated", _date(r.calibrated_at)),
        ("Valid until", _date(r.expires_at)),
        ("Note", r.note or "-"),
    ]


def point_rows(data: CertificateData) -> list[tuple[str, ...]]:
    """Per point: reference, raw reading, as found, its error, as left (computed), residual, spread."""
    r = data.record
    rows: list[tuple[str, ...]] = []
    for i, p in enumerate(r.points):
        found = r.as_found[i] if i < len(r.as_found) else None
        left = r.as_left[i] if i < len(r.as_left) else None
        spread = r.spreads[i] if i < len(r.spreads) else None
        rows.append(
            (
                str(i + 1),
                _num(p.reference),
                _num(p.reading),
                _num(found),
                "-" if found is None else _err(found - p.reference),
                _num(left),
                "-" if left is None else _err(left - p.reference),
                "-" if spread is None else f"{spread:.2g}",
            )
        )
    return rows


def as_left_rows(data: CertificateData) -> list[tuple[str, ...]]:
    return [
        (_date(c.measured_at), _num(c.reference), _num(c.reported), _err(c.reported - c.reference))
        for c in data.as_left_checks
    ]


def render(data: CertificateData) -> bytes:
    """The certificate as PDF bytes; raises :class:`CertificateError`."""
    if data.record.action == "reset" or not data.record.applies or not data.record.points:
        raise CertificateError(f"record #{data.record.id} is no calibration in effect; nothing to certify")
    try:
        # An optional extra: looked up by name, like orjson in outbox/codec.py, so the
        # packaging test does not count it as a requirement of every install.
        fpdf = importlib.import_module("fpdf")
    except ImportError as exc:
        raise CertificateError(f"the PDF certificate needs fpdf2: {INSTALL_HINT}") from exc
    pdf = fpdf.FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.set_title(latin1(f"Calibration certificate {data.sensor}.{data.record.quantity} #{data.record.id}"))
    pdf.set_creator("edge-agent")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 9, "Calibration certificate", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    pdf.cell(0, 5, latin1(f"Issued {_date(data.issued_at)} by edge-agent"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    for label, value in fields(data):
        pdf.set_font("Helvetica", "B", 10)
        pdf.cell(48, 6, latin1(label))
        pdf.set_font("Helvetica", "", 10)
        pdf.multi_cell(0, 6, latin1(value), new_x="LMARGIN", new_y="NEXT")
    u = f" [{data.unit}]" if data.unit else ""
    _table(
        pdf,
        "Points" + latin1(u),
        ("point", "reference", "raw reading", "as found", "error found", "as left", "error left", "std dev"),
        point_rows(data),
    )
    checks = as_left_rows(data)
    if checks:
        _table(
            pdf,
            "As left, measured after saving" + latin1(u),
            ("measured", "reference", "reported", "error"),
            checks,
        )
    else:
        pdf.ln(2)
        pdf.set_font("Helvetica", "I", 9)
        pdf.cell(0, 5, "As left above is computed from the fit; no as-left measurement was recorded.")
        pdf.ln(5)
    pdf.ln(8)
    pdf.set_font("Helvetica", "", 10)
    pdf.cell(0, 6, "Signature: ______________________________      Date: ________________")
    return bytes(pdf.output())


def _table(pdf: Any, title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    pdf.ln(3)
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 7, latin1(title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    with pdf.table(text_align="RIGHT", line_height=5) as table:
        table.row([latin1(h) for h in header])
        for row in rows:
            table.row([latin1(c) for c in row])
