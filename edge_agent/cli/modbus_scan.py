"""``edge-agent scan --modbus PORT``: which unit ids answer on a Modbus line."""

from __future__ import annotations

import typer

from edge_agent.cli.common import console, err_console, escape
from edge_agent.errors import HardwareOpenError
from edge_agent.sampling.hardware import Hardware
from edge_agent.sampling.registry import load_registry
from edge_drivers.api import DriverError

MODBUS_DRIVER = "modbus"


def parse_units(text: str) -> range:
    """``"1-247"`` or ``"5"`` as a range of unit ids, within 1..247."""
    first, sep, last = text.partition("-")
    try:
        lo, hi = int(first, 0), int(last, 0) if sep else int(first, 0)
    except ValueError:
        raise typer.BadParameter(f"{text!r}: expected FIRST-LAST, e.g. 1-247") from None
    if not 1 <= lo <= hi <= 247:
        raise typer.BadParameter(f"{text!r}: unit ids go from 1 to 247, first <= last")
    return range(lo, hi + 1)


def scan_modbus(port: str, units: range, baudrate: int, parity: str, stopbits: int, timeout: float) -> None:
    """Ask every unit id in ``units`` for holding register 0 and list those that answer."""
    from rich.progress import Progress

    registry = load_registry()
    found = registry.get(MODBUS_DRIVER)
    if found is None:
        err_console.print(
            f"[red]the {MODBUS_DRIVER} driver is not installed (pip install 'edge-drivers[modbus]')[/]"
        )
        raise typer.Exit(1)
    answering: list[int] = []
    with Hardware(registry) as hardware:
        try:
            line = hardware.modbus_port(MODBUS_DRIVER, port)
            link = hardware.modbus_links.link(
                line, baudrate=baudrate, parity=parity, stopbits=stopbits, timeout_s=timeout
            )
            link.connect()
            with Progress(console=err_console, transient=True) as progress:
                task = progress.add_task(f"Modbus {escape(port)}", total=len(units))
                for unit in units:
                    if link.answers(unit):
                        answering.append(unit)
                    progress.advance(task)
        except (DriverError, HardwareOpenError) as exc:
            err_console.print(f"[red]{escape(str(exc))}[/]")
            raise typer.Exit(1) from exc
    shown = ", ".join(str(u) for u in answering) or "none"
    console.print(
        f"Modbus {escape(port)}: {len(answering)} of {len(units)} unit ids answered: {shown}", highlight=False
    )
