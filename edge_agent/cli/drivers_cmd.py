"""``edge-agent drivers``: the installed drivers and what they measure."""

from __future__ import annotations

from edge_agent.cli.common import err_console, escape
from edge_agent.cli.tables import print_rows
from edge_agent.sampling.registry import load_registry


def drivers() -> None:
    """List installed sensor drivers: name, bus, quantities, simulator and the package providing each."""
    registry = load_registry()
    rows: list[tuple[str, ...]] = []
    for name in registry.names():
        found = registry.drivers[name]
        spec = found.spec
        addresses = " ".join(f"0x{a:02x}" for a in spec.addresses) or "-"
        quantities = "\n".join(escape(f"{q.name} [{q.unit}]" if q.unit else q.name) for q in spec.quantities)
        provider = found.provider
        simulator = registry.simulators.get(name)
        if simulator is not None and simulator.provider != provider:
            provider += f" (simulator: {simulator.provider})"  # a third-party simulator of this driver
        sim = "yes" if simulator is not None else "-"
        rows.append((escape(name), spec.bus, addresses, quantities, sim, escape(provider)))
    print_rows("sensor drivers", ("driver", "bus", "addresses", "quantities", "sim", "provided by"), rows)
    for broken in registry.broken:
        # A conflict's loser loaded fine; saying "could not be loaded" would send its author hunting.
        outcome = "is not used" if broken.used_instead is not None else "could not be loaded"
        message = f"{broken.kind} {broken.name!r} from {broken.provider} ({broken.entry_point}) {outcome}: {broken.error}"
        err_console.print(f"[yellow]![/] {escape(message)}", highlight=False)
