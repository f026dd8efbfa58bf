"""The published JSON Schema of the protocol, generated from its pydantic models.

``python -m edge_protocol.json_schema DIR`` writes one ``<name>.schema.json`` per model of
the package (every ``BaseModel`` defined in an ``edge_protocol`` module, found when it
runs: a model added to the protocol is published by running this again) and one
``event-<kind>.schema.json`` per event kind: the envelope with ``kind`` fixed and ``data``
described by :data:`edge_protocol.event_data.DATA_BY_KIND`.  ``--check`` exits 1 when
``DIR`` differs from what would be written.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import pkgutil
import re
import sys
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel

import edge_protocol
from edge_protocol.event_data import DATA_BY_KIND
from edge_protocol.wire import Envelope, EventKind

DIALECT = "https://json-schema.org/draft/2020-12/schema"
ID_BASE = "https://edge-agent.invalid/schema/"
"""Schema ids name the file; the host is a placeholder no one resolves."""


def protocol_models() -> list[type[BaseModel]]:
    """Every pydantic model defined in an ``edge_protocol`` module, by module and name."""
    found: dict[str, type[BaseModel]] = {}
    for info in pkgutil.iter_modules(edge_protocol.__path__):
        module = importlib.import_module(f"edge_protocol.{info.name}")
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, BaseModel) and obj.__module__ == module.__name__:
                found[f"{module.__name__}.{name}"] = obj
    return [found[k] for k in sorted(found)]


def file_name(model: type[BaseModel]) -> str:
    """``LatestValue`` → ``latest-value``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "-", model.__name__).lower()


def _document(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"$schema": DIALECT, "$id": f"{ID_BASE}{name}.schema.json", **schema}


def _event_schema(kind: str) -> dict[str, Any]:
    schema = Envelope.model_json_schema(by_alias=True)
    schema["title"] = f"Envelope of a {kind} event"
    schema["properties"]["kind"] = {"const": kind, "title": "Kind"}
    data_model = DATA_BY_KIND.get(kind)  # type: ignore[call-overload]
    if data_model is not None:
        data = data_model.model_json_schema(by_alias=True)
        defs = {**schema.pop("$defs", {}), **data.pop("$defs", {})}
        defs[data_model.__name__] = data
        schema["$defs"] = defs
        schema["properties"]["data"] = {"$ref": f"#/$defs/{data_model.__name__}"}
    return schema


def schemas() -> dict[str, dict[str, Any]]:
    """File stem → schema document."""
    out = {
        file_name(m): _document(file_name(m), m.model_json_schema(by_alias=True)) for m in protocol_models()
    }
    for kind in get_args(EventKind):
        out[f"event-{kind}"] = _document(f"event-{kind}", _event_schema(kind))
    return dict(sorted(out.items()))


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def differences(directory: Path) -> list[str]:
    """The files of ``directory`` that are missing, stale, or no longer generated."""
    wanted = {f"{stem}.schema.json": render(s) for stem, s in schemas().items()}
    present = {p.name for p in directory.glob("*.schema.json")} if directory.is_dir() else set()
    out = [
        name
        for name, text in wanted.items()
        if not (directory / name).is_file() or (directory / name).read_text() != text
    ]
    return sorted(out + sorted(present - wanted.keys()))


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.schema.json"):
        stale.unlink()
    paths = []
    for stem, schema in schemas().items():
        path = directory / f"{stem}.schema.json"
        path.write_text(render(schema))
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_protocol.json_schema", description=__doc__)
    parser.add_argument("directory", type=Path, help="where the schema files go (docs/schema)")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when out of date")
    args = parser.parse_args(argv)
    if args.check:
        stale = differences(args.directory)
        for name in stale:
            print(
                f"{args.directory / name}: out of date; run python -m edge_protocol.json_schema {args.directory}"
            )
        return 1 if stale else 0
    for path in write(args.directory):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
