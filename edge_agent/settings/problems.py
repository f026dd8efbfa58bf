"""pydantic's validation errors turned into :class:`ConfigProblem` lines.

Each problem names where the value came from (the file, or the ``EDGE_…`` variable that
set the field or a table above it) and the field path (``sensors[2].address (sensor
"climate")``), and says what is wrong in the user's terms: an unknown key gets a "did
you mean", a missing one "required but missing", a table or list variable that is not
JSON says so.  No foreign exception leaves this package: the caller raises
:class:`~edge_agent.errors.ConfigError` from the original.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from edge_agent.errors import ConfigProblem
from edge_agent.sensor_tests.config import drop_union_tag, test_model_of
from edge_agent.settings.environment import Variable
from edge_agent.settings.models import Settings
from edge_protocol.config_errors import unknown_key

# pydantic's error types for "a table (or list) was expected here".
_NOT_A_TABLE = frozenset({"model_type", "model_attributes_type", "dict_type", "list_type"})


def format_path(loc: tuple[str | int, ...]) -> str:
    """``("sensors", 2, "address")`` -> ``sensors[2].address``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def validation_problems(
    exc: ValidationError, *, file: str, data: dict[str, Any], variables: Sequence[Variable]
) -> list[ConfigProblem]:
    """One problem per error of ``Settings`` validating ``data`` (the file with the variables merged in)."""
    return [_problem(err, file, data, variables) for err in exc.errors()]


def _problem(
    err: ErrorDetails, file: str, data: dict[str, Any], variables: Sequence[Variable]
) -> ConfigProblem:
    # Model-level validators report at the model, not the field: drop pydantic's
    # type tags ("function-after[...]") that appear in the location for unions.
    loc = tuple(p for p in err["loc"] if isinstance(p, int) or not re.match(r"^[a-z-]+\[", str(p)))
    loc = drop_union_tag(loc)
    message = err["msg"].removeprefix("Value error, ")
    variable = _variable_of(loc, variables)
    if err["type"] == "extra_forbidden":
        parent = test_model_of(loc, data) if loc[0] == "tests" else _model_at(loc[:-1])
        known = set(parent.model_fields) if parent else set()
        message = unknown_key(str(loc[-1]), known)
    elif err["type"] == "missing":
        message = "required but missing"
    elif err["type"] in _NOT_A_TABLE and variable is not None and _is_raw_value_of(variable, loc, err):
        # pydantic-settings hands a union field (``tls: TLSSettings | None``) the variable's
        # string as it is when it is not JSON, and pydantic finds a string, not a table.
        message = _not_json_message(variable.value)
    named = _sensor_label(loc, data)
    source = variable.source if variable is not None else file
    return ConfigProblem(source, format_path(loc) + named, message)


def source_of(loc: tuple[str | int, ...], file: str, variables: Sequence[Variable]) -> str:
    """Where the value at ``loc`` came from: the variable that set it (or a table above it), else the file."""
    variable = _variable_of(loc, variables)
    return variable.source if variable is not None else file


def _variable_of(loc: tuple[str | int, ...], variables: Sequence[Variable]) -> Variable | None:
    """The variable that set the field at ``loc``, a table above it, or a key inside it."""
    where = tuple(str(p) for p in loc)
    matches = [v for v in variables if where[: len(v.path)] == v.path[: len(where)]]
    # The most precise first: EDGE_MQTT__PORT over EDGE_MQTT for mqtt.port.
    return max(matches, key=lambda v: len(v.path) if len(v.path) <= len(where) else 0, default=None)


def _is_raw_value_of(v: Variable, loc: tuple[str | int, ...], err: ErrorDetails) -> bool:
    return tuple(str(p) for p in loc) == v.path and err["input"] == v.value


def _not_json_message(value: str) -> str:
    try:
        json.loads(value)
    except ValueError as exc:
        return f"expected JSON for a table or list: {exc}"
    return "expected JSON for a table or list"


def _model_at(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The pydantic model that holds the field at ``loc`` (for 'did you mean')."""
    model: type[BaseModel] = Settings
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        inner = _first_model(field.annotation)
        if inner is None:
            return None
        model = inner
    return model


def _first_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _first_model(arg)
        if found is not None:
            return found
    return None


def _sensor_label(loc: tuple[str | int, ...], data: dict[str, Any]) -> str:
    """`` (sensor "climate")`` so the user need not count ``[[sensors]]`` or ``[[tests]]`` tables."""
    if len(loc) >= 2 and loc[0] in ("sensors", "tests") and isinstance(loc[1], int):
        tables = data.get(str(loc[0]))
        if isinstance(tables, list) and loc[1] < len(tables) and isinstance(tables[loc[1]], dict):
            name = tables[loc[1]].get("name")
            if isinstance(name, str):
                return f' ({str(loc[0])[:-1]} "{name}")'
    return ""
