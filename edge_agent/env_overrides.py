"""``EDGE_…`` environment variables as overrides of the configuration file's data.

``EDGE_MQTT__PORT=8883`` sets ``[mqtt] port``: the prefix is dropped, ``__`` separates
nested keys, and names are case-insensitive.  The value for a table or a list
(``EDGE_MQTT__TLS``, ``EDGE_SENSORS``) is JSON; any other value stays a string, which
pydantic converts exactly as it converts a TOML value ("8883" → 8883) and rejects with a
message naming the variable when it does not fit.  Variables are merged into the file's
tables key by key, so ``EDGE_MQTT__HOST`` leaves the file's other ``[mqtt]`` keys alone.

This is the part of pydantic-settings' environment source the agent used.  That library
costs the long-running daemon ~3 MB of RSS at import (bench/daemon_footprint.py), which
is why the agent does this itself; the cloud services keep using it.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from edge_agent.errors import ConfigProblem

NESTING = "__"


def env_paths(env: Mapping[str, str], prefix: str, ignore: frozenset[str]) -> dict[tuple[str, ...], str]:
    """Field paths set by ``{prefix}…`` variables, e.g. ``("mqtt", "port") -> "EDGE_MQTT__PORT"``."""
    return {
        tuple(key[len(prefix) :].lower().split(NESTING)): key
        for key in env
        if key.upper().startswith(prefix) and key.upper() not in ignore
    }


def apply_env(
    data: Mapping[str, Any],
    env: Mapping[str, str],
    model: type[BaseModel],
    *,
    prefix: str,
    ignore: frozenset[str] = frozenset(),
) -> tuple[dict[str, Any], list[ConfigProblem]]:
    """``data`` with the variables for ``model``'s fields merged in (variables win), and the
    problems of values that must be JSON and are not.  Variables naming no field of
    ``model`` are left out (the caller reports them with a suggestion)."""
    merged = _copy_tables(data)
    problems: list[ConfigProblem] = []
    # Shorter paths first: EDGE_MQTT__TLS='{…}' is the base that EDGE_MQTT__TLS__CA_FILE refines.
    for path, key in sorted(env_paths(env, prefix, ignore).items(), key=lambda item: len(item[0])):
        if not path[0] or path[0] not in model.model_fields:
            continue
        raw = env[key]
        value: Any = raw
        if _takes_json(model, path):
            try:
                value = json.loads(raw)
            except ValueError as exc:
                where = ".".join(path)
                problems.append(
                    ConfigProblem(
                        f"environment variable {key}", where, f"expected JSON for a table or list: {exc}"
                    )
                )
                continue
        _set(merged, path, value)
    return merged, problems


def _copy_tables(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _copy_tables(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def _set(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        child = tree.get(part)
        if not isinstance(child, dict):
            child = tree[part] = {}
        tree = child
    _merge(tree, path[-1], value)


def _merge(tree: dict[str, Any], key: str, value: Any) -> None:
    """A table merges into the table already there key by key; anything else replaces it."""
    old = tree.get(key)
    if isinstance(old, dict) and isinstance(value, dict):
        for k, v in value.items():
            _merge(old, k, v)
    else:
        tree[key] = _copy_tables(value) if isinstance(value, Mapping) else value


def _takes_json(model: type[BaseModel], path: tuple[str, ...]) -> bool:
    """Whether the field at ``path`` holds a table or a list (so its variable is JSON)."""
    annotation: Any = model
    for part in path:
        inner = _model_in(annotation)
        if inner is None or part not in inner.model_fields:
            return False  # not a field: the string goes on to be reported as unknown
        annotation = inner.model_fields[part].annotation
    return _is_container(annotation)


def _options(annotation: Any) -> tuple[Any, ...]:
    """The members of a union (``X | None``), or the annotation itself; Annotated unwrapped."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return tuple(a for arg in typing.get_args(annotation) for a in _options(arg))
    return (annotation,)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    for option in _options(annotation):
        if isinstance(option, type) and issubclass(option, BaseModel):
            return option
    return None


def _is_container(annotation: Any) -> bool:
    for option in _options(annotation):
        if _model_in(option) is not None:
            return True
        origin = typing.get_origin(option) or option
        if isinstance(origin, type) and issubclass(origin, list | tuple | set | frozenset | dict):
            return True
    return False
