"""The import graph of the product's packages, read from their source (no import runs).

Every ``import`` counts, wherever it stands: at module level, inside a function (a lazy
import is still a dependency) and under ``TYPE_CHECKING`` (a type-only cycle is still a
knot a reader has to untie); and so do the packages an import runs on its way (importing
``a.b.c`` runs ``a/__init__.py`` and ``a/b/__init__.py``).  Imports by name at run time
(``importlib.import_module``, entry points) are not seen: the entry points are the plug-in
boundary, and the product has no other.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

PRODUCT = ("edge_agent", "edge_drivers", "edge_protocol", "edge_cloud")


@dataclass
class ImportGraph:
    modules: dict[str, Path] = field(default_factory=dict)
    edges: dict[str, set[str]] = field(default_factory=dict)
    """Module → the product modules it imports."""
    foreign: dict[str, set[str]] = field(default_factory=dict)
    """Module → the top-level names of everything else it imports (stdlib and libraries)."""

    def cycles(self) -> list[list[str]]:
        """The strongly connected components of more than one module (Tarjan, iterative)."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        found: list[list[str]] = []
        for root in sorted(self.modules):
            if root in index:
                continue
            work = [(root, iter(sorted(self.edges[root])))]
            index[root] = low[root] = len(index)
            stack.append(root)
            on_stack.add(root)
            while work:
                node, children = work[-1]
                child = next(children, None)
                if child is not None:
                    if child not in index:
                        index[child] = low[child] = len(index)
                        stack.append(child)
                        on_stack.add(child)
                        work.append((child, iter(sorted(self.edges[child]))))
                    elif child in on_stack:
                        low[node] = min(low[node], index[child])
                    continue
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
        return found

    def top_level_imports(self, package: str) -> set[str]:
        """Every top-level name the modules of ``package`` import (product packages included)."""
        names: set[str] = set()
        for module in self.modules:
            if module.split(".")[0] == package:
                names |= self.foreign[module] | {m.split(".")[0] for m in self.edges[module]}
        return names


def package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise LookupError(f"{package} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def build(packages: Iterable[str] = PRODUCT) -> ImportGraph:
    """The graph of the installed product packages."""
    return build_from({package: package_dir(package) for package in packages})


def build_from(roots: dict[str, Path]) -> ImportGraph:
    """The graph of the packages (a folder) and modules (a ``.py`` file) named in ``roots``."""
    graph = ImportGraph()
    for name, root in roots.items():
        if root.is_file():
            graph.modules[name] = root
            continue
        for path in sorted(root.rglob("*.py")):
            parts = [name, *path.relative_to(root).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            graph.modules[".".join(parts)] = path
    for module, path in graph.modules.items():
        graph.edges[module], graph.foreign[module] = _imports_of(graph, module, path)
    return graph


def _resolve(graph: ImportGraph, name: str) -> str | None:
    while name:
        if name in graph.modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports_of(graph: ImportGraph, module: str, path: Path) -> tuple[set[str], set[str]]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    inside: set[str] = set()
    outside: set[str] = set()

    # Importing a.b.c runs a/__init__ and a/b/__init__ first: those are edges too, except
    # the importer's own packages, whose __init__ has already begun running.
    own = {module.rsplit(".", n)[0] for n in range(module.count(".") + 1)}

    def add(name: str) -> None:
        target = _resolve(graph, name)
        if target is not None:
            parts = target.split(".")
            for depth in range(1, len(parts) + 1):
                step = ".".join(parts[:depth])
                if step in graph.modules and step not in own:
                    inside.add(step)
        elif name.split(".")[0] not in PRODUCT:
            outside.add(name.split(".")[0])

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                # ``from pkg import mod`` depends on the submodule, ``from mod import name`` on mod.
                full = f"{source}.{alias.name}"
                add(full if full in graph.modules else source)
    return inside, outside


def stdlib() -> frozenset[str]:
    return frozenset(sys.stdlib_module_names)
