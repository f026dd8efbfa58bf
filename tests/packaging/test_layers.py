"""The product's modules: no import cycle, each layer imports only what it may, and every
library a distribution imports is one it declares (directly or through one it declares)."""

from __future__ import annotations

import ast
import importlib
import re
from importlib.metadata import packages_distributions, requires
from pathlib import Path

import pytest

from tests.packaging.import_graph import PRODUCT, ImportGraph, build, build_from, stdlib

DISTRIBUTION = {
    "edge_agent": "edge-agent",
    "edge_drivers": "edge-drivers",
    "edge_protocol": "edge-protocol",
    "edge_cloud": "edge-cloud",
}

# What each layer must never import (docs/ARCHITECTURE.md, "Layers and the rule between them").
NEVER = {
    "edge_drivers": {"edge_agent", "edge_cloud", "edge_protocol", "paho", "aiosqlite", "sqlite3", "pydantic"},
    "edge_protocol": {"edge_agent", "edge_cloud", "edge_drivers", "paho", "aiosqlite", "sqlalchemy"},
    "edge_agent": {"edge_cloud", "fastapi", "sqlalchemy", "alembic", "uvicorn", "jwt", "argon2"},
    "edge_cloud": {"edge_agent", "edge_drivers"},
}


@pytest.fixture(scope="module")
def graph() -> ImportGraph:
    return build()


def test_no_import_cycle_among_the_products_modules(graph: ImportGraph) -> None:
    assert len(graph.modules) > 100  # the walk found the sources
    cycles = graph.cycles()
    assert cycles == [], (
        "import cycles (every import counts, lazy and TYPE_CHECKING ones too):\n"
        + "\n".join(" ↔ ".join(c) for c in cycles)
    )


def test_a_cycle_through_a_package_init_is_found(tmp_path: Path) -> None:
    """``pkg/__init__`` importing ``pkg.a`` while ``b`` imports ``pkg.c``, and ``pkg.a`` imports
    ``b``: a cycle only through ``pkg/__init__``, which Python meets as a partially
    initialised module."""
    root = tmp_path / "pkg"
    root.mkdir()
    (root / "__init__.py").write_text("from pkg.a import A\n")
    (root / "a.py").write_text("import other\nA = 1\n")
    (root / "c.py").write_text("C = 1\n")
    (tmp_path / "other.py").write_text("from pkg.c import C\n")
    graph = build_from({"pkg": root, "other": tmp_path / "other.py"})
    assert graph.cycles() == [["other", "pkg", "pkg.a"]]


def test_a_driver_never_imports_a_simulator(graph: ImportGraph) -> None:
    """Simulators register beside their drivers (the ``edge_agent.simulators`` entry points):
    sim → driver only, so a driver is importable without any simulator."""
    offenders = {
        module: sorted(t for t in targets if t.startswith("edge_drivers.sim"))
        for module, targets in graph.edges.items()
        if module.startswith("edge_drivers.") and not module.startswith("edge_drivers.sim")
    }
    assert {m: t for m, t in offenders.items() if t} == {}


@pytest.mark.parametrize("package", PRODUCT)
def test_each_layer_imports_only_what_it_may(graph: ImportGraph, package: str) -> None:
    imported = graph.top_level_imports(package)
    assert imported & NEVER[package] == set()


# The agent uses the drivers library through its two stable modules only (the "Layers" table):
# the rest of edge_drivers may be reorganised without a release of edge-agent.
DRIVERS_API = {"edge_drivers.api", "edge_drivers.sim.api"}


_PACKAGES_ON_THE_WAY = {"edge_drivers", "edge_drivers.sim"}


def test_the_agent_imports_only_the_stable_driver_and_simulator_apis(graph: ImportGraph) -> None:
    reaching_in = {
        module: sorted(target for target in targets if target.split(".")[0] == "edge_drivers")
        for module, targets in graph.edges.items()
        if module.split(".")[0] == "edge_agent"
    }
    offenders = {
        # The packages an import of an API module runs on its way (edge_drivers/__init__) are fine.
        module: [t for t in targets if t not in DRIVERS_API and t not in _PACKAGES_ON_THE_WAY]
        for module, targets in reaching_in.items()
    }
    assert {module: targets for module, targets in offenders.items() if targets} == {}
    assert any(targets for targets in reaching_in.values())  # the walk saw the agent's driver imports


def test_the_agent_imports_only_names_the_stable_apis_promise(graph: ImportGraph) -> None:
    """A name imported from ``edge_drivers.api`` but missing from its ``__all__`` is an internal
    that happens to be visible there (an import of the module itself), not a promise."""
    promised = {name: set(importlib.import_module(name).__all__) for name in DRIVERS_API}
    unpromised = []
    for module, path in graph.modules.items():
        if module.split(".")[0] != "edge_agent":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module in promised:
                unpromised += [
                    f"{module}: {node.module}.{a.name}"
                    for a in node.names
                    if a.name not in promised[node.module]
                ]
    assert unpromised == []


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _declared(distribution: str) -> set[str]:
    """The distribution's requirements (without extras' ones) and theirs, one level down."""
    direct = {_name(r) for r in requires(distribution) or [] if "extra ==" not in r}
    below = {_name(r) for d in direct for r in (requires(d) or []) if "extra ==" not in r}
    return direct | below


def _optional(distribution: str) -> set[str]:
    """What the distribution's feature extras declare (``edge-drivers[modbus]``: pymodbus), not
    its development tools: a feature may import its own optional library, lazily."""
    return {_name(r) for r in requires(distribution) or [] if "extra ==" in r and 'extra == "dev"' not in r}


@pytest.mark.parametrize("package", PRODUCT)
def test_every_library_a_distribution_imports_is_declared(graph: ImportGraph, package: str) -> None:
    owners = packages_distributions()
    declared = _declared(DISTRIBUTION[package]) | _optional(DISTRIBUTION[package]) | {DISTRIBUTION[package]}
    undeclared = {}
    for name in graph.top_level_imports(package) - stdlib():
        dists = {d.lower().replace("_", "-") for d in owners.get(name, [])}
        if not dists & declared:
            undeclared[name] = sorted(dists) or ["not installed"]
    assert undeclared == {}, f"{DISTRIBUTION[package]} imports libraries it does not declare: {undeclared}"
