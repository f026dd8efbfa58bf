"""I2C bus scan: which addresses answer, and which driver recognises what answers.

Probing follows i2cdetect's default ("auto") mode: a read-byte for 0x30–0x37 and
0x50–0x5F, where a quick write could corrupt an EEPROM or confuse write-protect
logic, and an SMBus quick write elsewhere.  Identification calls each installed
driver's non-destructive ``identify(bus, address)`` for the addresses it can live at.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_agent.sampling.registry import DriverRegistry
from edge_drivers.api import SMBusLike

FIRST_ADDRESS = 0x08
LAST_ADDRESS = 0x77


@dataclass(frozen=True)
class Identification:
    driver: str
    description: str


@dataclass(frozen=True)
class ScanHit:
    address: int
    identified: tuple[Identification, ...] = field(default_factory=tuple)

    @property
    def candidates(self) -> str:
        return ", ".join(i.driver for i in self.identified)


def _answers(bus: SMBusLike, address: int) -> bool:
    try:
        if 0x30 <= address <= 0x37 or 0x50 <= address <= 0x5F:
            bus.read_byte(address)
        else:
            bus.write_quick(address)
    except OSError:
        return False
    return True


def identify_at(bus: SMBusLike, address: int, registry: DriverRegistry) -> tuple[Identification, ...]:
    found = []
    for registered in registry.i2c_drivers():
        spec = registered.spec
        if spec.identify is None or address not in spec.addresses:
            continue
        try:
            description = spec.identify(bus, address)
        except Exception:  # a third-party identify() must not abort the scan
            description = None
        if description:
            found.append(Identification(spec.name, description))
    return tuple(found)


def scan(
    bus: SMBusLike, registry: DriverRegistry, first: int = FIRST_ADDRESS, last: int = LAST_ADDRESS
) -> list[ScanHit]:
    """Every address in ``first..last`` that acknowledges, with what identifies it."""
    return [
        ScanHit(address, identify_at(bus, address, registry))
        for address in range(first, last + 1)
        if _answers(bus, address)
    ]
