"""The Modbus driver: one sensor per slave, its quantities read from a register map.

A sensor is a slave (``unit``) on a line (an RS-485 port or ``tcp://host:port``), with a
register map given in ``registers`` or taken from a shipped ``profile`` (or both: the
profile's entries first, then the sensor's own).  Adjacent registers are read together,
up to ``max_block`` registers per request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from edge_drivers.api import DriverOptions, DriverSpec, Quantity, is_finite_number, is_plain_int
from edge_drivers.clock import SYSTEM_CLOCK, Clock
from edge_drivers.errors import IllegalRegisterError, OptionError
from edge_drivers.modbus.link import ModbusLink, ModbusLinks
from edge_drivers.modbus.profiles import load_profile
from edge_drivers.modbus.registers import (
    MAX_REGISTERS,
    NAME,
    Block,
    Register,
    plan_blocks,
    registers_from,
    value_of,
)

Parity = Literal["N", "E", "O"]


@dataclass(frozen=True, kw_only=True)
class Options(DriverOptions):
    """Options of :class:`ModbusSensor` (``[sensors.options]``)."""

    driver_name = NAME

    unit: int = field(metadata={"description": "Slave address (unit id), 1..247."})
    profile: str | None = field(
        default=None, metadata={"description": "A shipped register map: sdm120, transmitter_4_20ma."}
    )
    registers: tuple[Register, ...] = field(
        default=(), metadata={"description": "The register map (after the profile's, if any)."}
    )
    parity: Parity = field(default="N", metadata={"description": "Serial parity: N, E or O."})
    stopbits: int = field(default=1, metadata={"description": "Serial stop bits: 1 or 2."})
    timeout_s: float = field(default=0.5, metadata={"description": "How long to wait for an answer."})
    max_block: int = field(
        default=MAX_REGISTERS, metadata={"description": "Most registers read in one request (1..125)."}
    )
    max_gap: int = field(
        default=0, metadata={"description": "Unused registers a request may span to join two reads."}
    )
    busy_retries: int = field(default=2, metadata={"description": "Tries again when the device says busy."})

    def __post_init__(self) -> None:
        if not (is_plain_int(self.unit) and 1 <= self.unit <= 247):
            raise OptionError(NAME, "unit", "must be a slave address from 1 to 247", value=self.unit)
        if self.profile is not None and not isinstance(self.profile, str):
            raise OptionError(NAME, "profile", "must be a profile name", value=self.profile)
        own = registers_from(self.registers)
        from_profile = load_profile(self.profile).registers if self.profile else ()
        if not own and not from_profile:
            raise OptionError(NAME, "registers", "give a register map, a profile, or both")
        taken = {r.quantity for r in from_profile}
        for i, register in enumerate(own):
            if register.quantity in taken:
                raise OptionError(
                    NAME,
                    ("registers", i, "quantity"),
                    f"{register.quantity!r} is already in profile {self.profile!r}",
                )
        if self.parity not in ("N", "E", "O"):
            raise OptionError(NAME, "parity", "must be N, E or O", value=self.parity)
        if self.stopbits not in (1, 2) or not is_plain_int(self.stopbits):
            raise OptionError(NAME, "stopbits", "must be 1 or 2", value=self.stopbits)
        if not (is_finite_number(self.timeout_s) and 0 < self.timeout_s <= 60):
            raise OptionError(NAME, "timeout_s", "must be from 0 to 60 seconds", value=self.timeout_s)
        if not (is_plain_int(self.max_block) and 1 <= self.max_block <= MAX_REGISTERS):
            raise OptionError(NAME, "max_block", f"must be from 1 to {MAX_REGISTERS}", value=self.max_block)
        if not (is_plain_int(self.max_gap) and 0 <= self.max_gap < self.max_block):
            raise OptionError(NAME, "max_gap", "must be from 0 to max_block - 1", value=self.max_gap)
        if not (is_plain_int(self.busy_retries) and 0 <= self.busy_retries <= 10):
            raise OptionError(NAME, "busy_retries", "must be from 0 to 10", value=self.busy_retries)
        # Frozen: the normalised list (tables as Register) goes in as dataclasses' __init__ does.
        # The profile's entries stay out of it, so the options dump back to what was written.
        object.__setattr__(self, "registers", own)

    def register_map(self) -> tuple[Register, ...]:
        """The profile's registers, then the sensor's own."""
        return (*(load_profile(self.profile).registers if self.profile else ()), *self.registers)


class ModbusSensor:
    """One Modbus slave, read through a shared :class:`ModbusLinks`."""

    def __init__(
        self,
        links: ModbusLinks,
        port: str,
        baudrate: int | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        unit: int,
        profile: str | None = None,
        registers: tuple[Register | dict[str, Any], ...] = (),
        parity: Parity = "N",
        stopbits: int = 1,
        timeout_s: float = 0.5,
        max_block: int = MAX_REGISTERS,
        max_gap: int = 0,
        busy_retries: int = 2,
    ) -> None:
        opts = Options(
            unit=unit,
            profile=profile,
            registers=cast(tuple[Register, ...], registers),
            parity=parity,
            stopbits=stopbits,
            timeout_s=timeout_s,
            max_block=max_block,
            max_gap=max_gap,
            busy_retries=busy_retries,
        )
        del clock  # the link keeps the time (the inter-frame gap); one clock per line
        self.unit = opts.unit
        self.registers = opts.register_map()
        self.blocks: list[Block] = plan_blocks(self.registers, max_block=opts.max_block, max_gap=opts.max_gap)
        self._busy_retries = opts.busy_retries
        shipped = load_profile(opts.profile).baudrate if opts.profile else None
        self.link: ModbusLink = links.link(
            port,
            baudrate=baudrate or shipped or 9600,
            parity=opts.parity,
            stopbits=opts.stopbits,
            timeout_s=opts.timeout_s,
            user=self,
        )
        self.link.connect()

    def read(self) -> dict[str, float]:
        """Every quantity of the map, block by block; the first failing block fails the read.
        A float that is NaN or infinite is left out."""
        out: dict[str, float] = {}
        for block in self.blocks:
            try:
                words = self.link.read(
                    self.unit, block.function, block.address, block.count, busy_retries=self._busy_retries
                )
            except IllegalRegisterError as exc:
                raise IllegalRegisterError(
                    f"{exc}: the device refuses {block.describe()}; fix the register map "
                    "(addresses are zero-based: register 30001 is input 0x0000)",
                    code=exc.code,
                ) from exc
            for register in block.registers:
                start = register.address - block.address
                value = value_of(register, words[start : start + register.width])
                # A float register holding NaN or ±inf (a meter's "no value") is left out, as
                # the driver API asks for a quantity the device cannot give right now.
                if math.isfinite(value):
                    out[register.quantity] = value
        return out


def quantities(**options: Any) -> tuple[Quantity, ...]:
    """What a sensor with these options reports: its register map's quantities."""
    return tuple(
        Quantity(r.quantity, r.quantity.rsplit("_", 1)[-1], r.describe())
        for r in Options(**options).register_map()
    )


DRIVER = DriverSpec(
    name=NAME,
    bus="modbus",
    quantities=(),
    factory=ModbusSensor,
    description="Modbus RTU (RS-485) and TCP slaves, one sensor per unit id, from a register map or profile",
    options=Options,
    quantities_for=quantities,
)
