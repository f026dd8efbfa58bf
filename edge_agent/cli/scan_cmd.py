"""``edge-agent scan``: an i2cdetect-style map of a bus, with the drivers that recognise each chip."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edge_agent.cli.common import EX_USAGE, console, err_console, escape, load_config
from edge_agent.cli.modbus_scan import parse_units, scan_modbus
from edge_agent.errors import HardwareOpenError
from edge_agent.sampling.hardware import Hardware, LeftOff, open_i2c_bus, simulated_demo_board
from edge_agent.sampling.registry import load_registry
from edge_agent.sampling.scanner import FIRST_ADDRESS, LAST_ADDRESS, ScanHit, scan
from edge_agent.settings import SIM
from edge_drivers.api import SMBusLike


def _grid(hits: list[ScanHit]) -> str:
    found = {h.address for h in hits}
    lines = ["     " + " ".join(f"{c:2x}" for c in range(16))]
    for row in range(0, 0x80, 0x10):
        cells = []
        for col in range(16):
            addr = row + col
            if not FIRST_ADDRESS <= addr <= LAST_ADDRESS:
                cells.append("  ")
            else:
                cells.append(f"[bold green]{addr:02x}[/]" if addr in found else "--")
        lines.append(f"{row:02x}:  " + " ".join(cells))
    return "\n".join(lines)


def scan_command(
    bus: Annotated[str, typer.Option("--bus", "-b", help="I2C bus number (/dev/i2c-N) or 'sim'.")] = "1",
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="With --bus sim: simulate the config's sensors, not the demo board."
        ),
    ] = None,
    modbus: Annotated[
        str | None,
        typer.Option(
            "--modbus",
            help="Scan a Modbus line instead: a serial port, tcp://HOST:PORT, or sim:// (the demo line).",
        ),
    ] = None,
    units: Annotated[
        str, typer.Option("--units", help="With --modbus: unit ids to try, FIRST-LAST.")
    ] = "1-247",
    baudrate: Annotated[int, typer.Option("--baudrate", help="With --modbus: line speed.")] = 9600,
    parity: Annotated[str, typer.Option("--parity", help="With --modbus: N, E or O.")] = "N",
    stopbits: Annotated[int, typer.Option("--stopbits", help="With --modbus: 1 or 2.")] = 1,
    timeout: Annotated[
        float, typer.Option("--timeout", help="With --modbus: seconds to wait for each unit.")
    ] = 0.1,
) -> None:
    """Scan an I2C bus like i2cdetect and say which driver identifies each device (or, with
    --modbus, which unit ids answer on a Modbus line)."""
    if modbus is not None:
        scan_modbus(modbus, parse_units(units), baudrate, parity, stopbits, timeout)
        return
    registry = load_registry()
    hardware: Hardware | None = None
    target: SMBusLike
    left_off: list[LeftOff] = []
    if bus == SIM:
        if config is None:
            board = simulated_demo_board(registry)
            target, left_off = board.bus, board.left_off
        else:
            settings = load_config(config)
            hardware = Hardware(registry)
            for sensor in settings.sensors:
                found = registry.get(sensor.driver)
                if sensor.bus == SIM and sensor.address is not None and found is not None:
                    try:
                        hardware.simulated_device(found.spec, sensor.address)
                    except HardwareOpenError as exc:  # a plug-in's simulator: the others are still scanned
                        left_off.append(
                            LeftOff(sensor.driver, sensor.address, f"sensor {sensor.name!r}: {exc}")
                        )
            target = hardware.sim_bus
    else:
        try:
            number = int(bus, 0)
        except ValueError:
            err_console.print(f"[red]--bus must be a bus number or 'sim', not {bus!r}[/]")
            raise typer.Exit(EX_USAGE) from None
        try:
            target = open_i2c_bus(number)
        except HardwareOpenError as exc:
            err_console.print(f"[red]{exc}[/]")
            raise typer.Exit(1) from exc
    try:
        hits = scan(target, registry)
    finally:
        if hardware is not None:
            hardware.close()
        close = getattr(target, "close", None)
        if close is not None:
            close()
    from rich.table import Table

    console.print(_grid(hits), highlight=False)
    table = Table("address", "identified as", "driver", title=f"I2C bus {bus}: {len(hits)} device(s)")
    for hit in hits:
        if hit.identified:
            for ident in hit.identified:
                table.add_row(f"0x{hit.address:02x}", ident.description, ident.driver)
        else:
            table.add_row(f"0x{hit.address:02x}", "[dim]unknown device[/]", "-")
    console.print(table)
    # After the table, on stderr: a chip missing from the map is explained, never silently absent.
    for missing in left_off:
        err_console.print(f"[yellow]![/] left off the simulated bus: {escape(str(missing))}", highlight=False)
