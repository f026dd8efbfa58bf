"""The register map: what to read, how the words become a number, and which reads to batch.

Pure code, no bus and no pymodbus: a :class:`Register` is one quantity of a device's map
(its function, address, data type, word and byte order, scale and offset),
:func:`decode` turns the words read into the number, :func:`encode` does the reverse for
the simulator, and :func:`plan_blocks` groups registers into as few requests as the
device allows.

Orders, for a 32-bit value whose big-endian bytes are A B C D:

=============  ===========  ===============  =========================
word_order     byte_order   registers        often called
=============  ===========  ===============  =========================
big            big          [AB, CD]         ABCD (Modbus default, Eastron)
little         big          [CD, AB]         CDAB ("word swap")
big            little       [BA, DC]         BADC ("byte swap")
little         little       [DC, BA]         DCBA
=============  ===========  ===============  =========================
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from edge_drivers.api import Quantity, is_finite_number, is_plain_int
from edge_drivers.errors import OptionError

NAME = "modbus"

Function = Literal["holding", "input", "coil", "discrete"]
DataType = Literal["int16", "uint16", "int32", "uint32", "float32", "float64", "bool"]
Order = Literal["big", "little"]

FUNCTION_CODES: dict[str, int] = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}
_STRUCT: dict[str, str] = {
    "int16": "h",
    "uint16": "H",
    "int32": "i",
    "uint32": "I",
    "float32": "f",
    "float64": "d",
}
WORDS: dict[str, int] = {
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "float32": 2,
    "float64": 4,
    "bool": 1,
}
"""Registers (or, for coils and discrete inputs, bits) one value takes."""
BIT_FUNCTIONS = frozenset({"coil", "discrete"})
MAX_REGISTERS = 125
"""Most registers one read (function 03/04) may ask for (Modbus application protocol v1.1b3, 6.3)."""
MAX_BITS = 2000
"""Most coils or discrete inputs one read (01/02) may ask for (6.1)."""


def _choice(value: object, allowed: Iterable[str], path: str) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise OptionError(NAME, path, f"must be one of {', '.join(allowed)}", value=value)


@dataclass(frozen=True, kw_only=True)
class Register:
    """One quantity of a register map (a ``registers`` entry, or a profile's)."""

    quantity: str = field(metadata={"description": "Quantity name with its unit last, e.g. voltage_v."})
    function: Function = field(
        default="holding",
        metadata={"description": "holding (03), input (04) registers, coil (01) or discrete (02) input."},
    )
    address: int = field(metadata={"description": "Zero-based address on the wire (register 30001 is 0)."})
    type: DataType = field(
        default="uint16",
        metadata={"description": "int16, uint16, int32, uint32, float32, float64; bool for coils/inputs."},
    )
    word_order: Order = field(
        default="big", metadata={"description": "big: the most significant register comes first."}
    )
    byte_order: Order = field(
        default="big", metadata={"description": "big: the high byte of each register comes first."}
    )
    scale: float = field(default=1.0, metadata={"description": "value = raw * scale + offset"})
    offset: float = field(default=0.0, metadata={"description": "value = raw * scale + offset"})

    def __post_init__(self) -> None:
        try:
            Quantity(self.quantity, "")
        except (TypeError, ValueError):
            raise OptionError(
                NAME, "quantity", "must be snake_case with the unit last, e.g. voltage_v", value=self.quantity
            ) from None
        _choice(self.function, FUNCTION_CODES, "function")
        if not (is_plain_int(self.address) and 0 <= self.address <= 0xFFFF):
            raise OptionError(
                NAME, "address", "must be a register address from 0 to 65535", value=self.address
            )
        _choice(self.type, WORDS, "type")
        bits = self.function in BIT_FUNCTIONS
        if bits != (self.type == "bool"):
            need = "bool" if bits else "a numeric type (int16 … float64)"
            raise OptionError(NAME, "type", f"a {self.function} register needs type {need}", value=self.type)
        if self.address + WORDS[self.type] - 1 > 0xFFFF:
            raise OptionError(
                NAME, "address", f"a {self.type} at this address runs past 65535", value=self.address
            )
        _choice(self.word_order, ("big", "little"), "word_order")
        _choice(self.byte_order, ("big", "little"), "byte_order")
        for name in ("scale", "offset"):
            if not is_finite_number(getattr(self, name)):
                raise OptionError(NAME, name, "must be a finite number", value=getattr(self, name))

    @property
    def width(self) -> int:
        """Registers (or bits) the value spans."""
        return WORDS[self.type]

    @property
    def end(self) -> int:
        """The address after the last one the value uses."""
        return self.address + self.width

    def describe(self) -> str:
        """``input register 0x000C (active_power_w, float32)``, for messages."""
        kind = (
            "register"
            if self.function not in BIT_FUNCTIONS
            else "input"
            if self.function == "discrete"
            else ""
        )
        what = f"{self.function} {kind}".strip()
        return f"{what} 0x{self.address:04X} ({self.quantity}, {self.type})"


def register_from(entry: object) -> Register:
    """A ``registers`` entry as given: a :class:`Register` or a table of its fields."""
    if isinstance(entry, Register):
        return entry
    if not isinstance(entry, Mapping) or not all(isinstance(key, str) for key in entry):
        raise OptionError(NAME, (), "must be a table of quantity, function, address, type, …", value=entry)
    known = {f.name for f in fields(Register)}
    for key in entry:
        if key not in known:
            raise OptionError(NAME, key, f"unknown field (known: {', '.join(sorted(known))})")
    for required in ("quantity", "address"):
        if required not in entry:
            raise OptionError(NAME, required, "required but missing")
    return Register(**entry)


def registers_from(entries: object, where: str = "registers") -> tuple[Register, ...]:
    """A list of register tables, checked, with each error placed at its index."""
    if isinstance(entries, str | bytes | Mapping) or not isinstance(entries, Sequence):
        raise OptionError(NAME, where, "must be a list of tables", value=entries)
    out: list[Register] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(entries):
        try:
            register = register_from(entry)
        except OptionError as exc:
            raise exc.within(where, i) from None
        if register.quantity in seen:
            raise OptionError(
                NAME,
                (where, i, "quantity"),
                f"{register.quantity!r} is already {where}[{seen[register.quantity]}]; each name may be used once",
            )
        seen[register.quantity] = i
        out.append(register)
    return tuple(out)


# -- numbers from words -------------------------------------------------------------------


def _arranged(data: bytes, word_order: Order, byte_order: Order) -> bytes:
    """Big-endian bytes of a value <-> the bytes of its registers in wire order (its own inverse)."""
    words = [data[i : i + 2] for i in range(0, len(data), 2)]
    if word_order == "little":
        words.reverse()
    if byte_order == "little":
        words = [w[::-1] for w in words]
    return b"".join(words)


def decode(
    words: Sequence[int], data_type: DataType, word_order: Order = "big", byte_order: Order = "big"
) -> float:
    """The number held in ``words`` (16-bit register values, lowest address first)."""
    if data_type == "bool":
        return 1.0 if words[0] else 0.0
    count = WORDS[data_type]
    if len(words) != count:
        raise ValueError(f"{data_type} takes {count} registers, got {len(words)}")
    raw = b"".join(w.to_bytes(2, "big") for w in words)
    value: float = struct.unpack(">" + _STRUCT[data_type], _arranged(raw, word_order, byte_order))[0]
    if data_type == "float32":
        return _shortest_float32(value)
    return float(value)


def _shortest_float32(value: float) -> float:
    """The shortest decimal that is the same float32: a meter's 0.95 is published as 0.95,
    not as the double nearest to the float32 (0.949999988079071), whose extra digits were
    never measured."""
    if value != value or value in (float("inf"), float("-inf")):
        return value
    exact = struct.pack(">f", value)
    for digits in range(1, 10):  # 9 significant digits always round-trip a float32
        candidate = float(f"{value:.{digits}g}")
        try:
            if struct.pack(">f", candidate) == exact:
                return candidate
        except OverflowError:  # rounded up past the largest float32
            continue
    return value


def encode(
    value: float, data_type: DataType, word_order: Order = "big", byte_order: Order = "big"
) -> list[int]:
    """The registers a device holding ``value`` exposes (the simulator's side of :func:`decode`)."""
    if data_type == "bool":
        return [1 if value else 0]
    code = _STRUCT[data_type]
    number: Any = value if code in "fd" else round(value)
    data = _arranged(struct.pack(">" + code, number), word_order, byte_order)
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def value_of(register: Register, words: Sequence[int]) -> float:
    """The quantity: the decoded number, scaled."""
    return (
        decode(words, register.type, register.word_order, register.byte_order) * register.scale
        + register.offset
    )


# -- batching -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """One read request: ``count`` registers (or bits) of one function from ``address``."""

    function: Function
    address: int
    count: int
    registers: tuple[Register, ...]

    def describe(self) -> str:
        names = ", ".join(r.quantity for r in self.registers)
        last = self.address + self.count - 1
        span = f"0x{self.address:04X}" if last == self.address else f"0x{self.address:04X}-0x{last:04X}"
        return f"{self.function} {span} ({names})"


def plan_blocks(registers: Iterable[Register], *, max_block: int, max_gap: int = 0) -> list[Block]:
    """Group registers into few reads: per function, by address, merging neighbours while
    the block stays within ``max_block`` registers (bits: ``MAX_BITS``) and the hole between
    two neighbours is at most ``max_gap`` (a hole is read too, and some devices refuse it)."""
    by_function: dict[str, list[Register]] = {}
    for register in registers:
        by_function.setdefault(register.function, []).append(register)
    blocks: list[Block] = []
    for function in FUNCTION_CODES:
        group = sorted(by_function.get(function, ()), key=lambda r: (r.address, r.end))
        limit = MAX_BITS if function in BIT_FUNCTIONS else max_block
        current: list[Register] = []
        start = end = 0
        for register in group:
            if current and register.address - end <= max_gap and max(end, register.end) - start <= limit:
                current.append(register)
                end = max(end, register.end)
                continue
            if current:
                blocks.append(Block(function, start, end - start, tuple(current)))  # type: ignore[arg-type]
            current, start, end = [register], register.address, register.end
        if current:
            blocks.append(Block(function, start, end - start, tuple(current)))  # type: ignore[arg-type]
    return blocks
