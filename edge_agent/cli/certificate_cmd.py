"""``edge-agent calibration certificate SENSOR --out FILE.pdf``: the calibration in effect as a PDF."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from edge_agent.calibration import CalibrationRecord
from edge_agent.calibration.certificate import CertificateData, CertificateError, render
from edge_agent.cli.cal_common import calibration_store, fail, known_sensor
from edge_agent.cli.common import DEFAULT_CONFIG, ConfigOption, console, load_config
from edge_agent.sampling.registry import load_registry
from edge_agent.settings import SensorSettings
from edge_protocol.files import write_atomic


def certificate(
    sensor: Annotated[str, typer.Argument(help="Sensor name from the config.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="The PDF file to write.", show_default=False)],
    quantity: Annotated[
        str | None, typer.Option("--quantity", "-q", help="The calibrated quantity (needed if several are).")
    ] = None,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Write the calibration certificate (one page of PDF) of the calibration in effect."""
    settings = load_config(config)
    target = known_sensor(settings, sensor)
    with calibration_store(settings) as store:
        record = _pick(store.active(target.name), target.name, quantity)
        checks = store.as_left_checks(record.restores or record.id)
    data = CertificateData(
        device_id=settings.device.id,
        device_name=settings.device.name,
        device_location=settings.device.location,
        sensor=target.name,
        driver=target.driver,
        connection=_connection(target),
        unit=load_registry().unit(target.driver, record.quantity),
        record=record,
        as_left_checks=checks,
        issued_at=time.time(),
    )
    try:
        pdf = render(data)
    except CertificateError as exc:
        fail(str(exc), 1)
    if not out.parent.is_dir():
        fail(f"--out: the folder {out.parent} does not exist; create it or choose another", 1)
    try:
        write_atomic(out, pdf)
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}", 1)
    console.print(
        f"Wrote the certificate of calibration #{record.id} ({target.name}.{record.quantity}) to {out}"
    )


def _pick(active: list[CalibrationRecord], sensor: str, quantity: str | None) -> CalibrationRecord:
    found = [r for r in active if quantity in (None, r.quantity)]
    if not found:
        what = f"{sensor}.{quantity}" if quantity else sensor
        fail(f"{what} has no calibration in effect; calibrate it first (edge-agent calibrate {sensor})", 1)
    if len(found) > 1:
        fail(
            f"{sensor} has calibrations of {', '.join(r.quantity for r in found)}; choose one with --quantity"
        )
    return found[0]


def _connection(target: SensorSettings) -> str:
    if target.port:
        return f"port {target.port}"
    where = f"I2C bus {target.bus}"
    return where + (f", address 0x{target.address:02x}" if target.address is not None else "")
