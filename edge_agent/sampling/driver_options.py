"""A sensor's ``options`` table checked against its driver's options class, with pydantic.

The drivers library declares options as standard library dataclasses (it does not
depend on pydantic: ``edge_drivers.api``); a third-party driver may use a pydantic model
instead.  Both are validated through one small pydantic model per options class, whose
single field has that class as its type, and ``extra="forbid"``: pydantic gives a
standard library dataclass the config of the model it sits in, nested ones included,
so an unknown key is an error.  (``TypeAdapter`` of the dataclass alone would drop
unknown keys silently, and refuses a config of its own for dataclasses.)  A pydantic
model keeps its own config.

The dataclass's ``__post_init__`` runs inside the validation; an
:class:`~edge_drivers.api.OptionError` it raises carries the option's path, which is
added to where pydantic was, so the config check names the field
(``sensors[2].options.scaling[0].quantity``) and not just the table.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from pydantic_core import ErrorDetails

from edge_drivers.api import OptionError

_UNKNOWN_KEY = frozenset({"extra_forbidden", "unexpected_keyword_argument"})
_MISSING = frozenset({"missing", "missing_keyword_only_argument", "missing_argument"})
# pydantic names the validator in the location of errors from some types ("function-after[...]").
_TYPE_TAG = re.compile(r"^[a-z-]+\[")


@dataclass(frozen=True)
class OptionProblem:
    """One problem of an options table; ``loc`` is inside the table (``("gain",)``)."""

    loc: tuple[str | int, ...]
    message: str
    unknown_key: str | None = None
    """Set when the key at ``loc`` is not an option; ``known_keys`` are those that are."""
    known_keys: frozenset[str] = frozenset()


def validate_options(
    options_class: type[Any], table: Mapping[str, Any]
) -> tuple[dict[str, Any], list[OptionProblem]]:
    """The table validated and dumped to plain values (the driver's keyword arguments), or its problems."""
    try:
        model = _table_model(options_class)
    except Exception as exc:  # a plug-in's class pydantic cannot build a validator for
        return dict(table), [OptionProblem((), f"the driver's options class cannot be checked: {exc}")]
    try:
        validated = model.model_validate({"options": dict(table)})
    except ValidationError as exc:
        return dict(table), [_problem(err, options_class) for err in exc.errors()]
    except Exception as exc:  # a plug-in's __post_init__ raising something other than ValueError
        return dict(table), [
            OptionProblem((), f"the driver's options class raised {type(exc).__name__}: {exc}")
        ]
    dumped: dict[str, Any] = validated.model_dump()["options"]
    return dumped, []


_TABLE_MODELS: dict[type[Any], type[BaseModel]] = {}
"""Built once per options class: building one took ~47 ms here (the ADS1115's), validating ~0.2 ms."""


def _table_model(options_class: type[Any]) -> type[BaseModel]:
    model = _TABLE_MODELS.get(options_class)
    if model is None:
        model = create_model(
            f"{options_class.__name__}Table",
            __config__=ConfigDict(extra="forbid"),
            options=(options_class, ...),
        )
        _TABLE_MODELS[options_class] = model
    return model


def _problem(err: ErrorDetails, options_class: type[Any]) -> OptionProblem:
    loc = tuple(p for p in err["loc"][1:] if isinstance(p, int) or not _TYPE_TAG.match(p))
    cause = err.get("ctx", {}).get("error")
    if isinstance(cause, OptionError):
        return OptionProblem((*loc, *cause.path), cause.reason)
    if err["type"] in _UNKNOWN_KEY and loc:
        owner = _class_at(options_class, loc[:-1])
        known = _field_names(owner) if owner is not None else frozenset()
        return OptionProblem(loc, err["msg"], unknown_key=str(loc[-1]), known_keys=known)
    if err["type"] in _MISSING:
        return OptionProblem(loc, "required but missing")
    return OptionProblem(loc, err["msg"].removeprefix("Value error, "))


def _field_names(cls: type[Any]) -> frozenset[str]:
    if dataclasses.is_dataclass(cls):
        return frozenset(f.name for f in dataclasses.fields(cls) if f.init)
    if isinstance(cls, type) and issubclass(cls, BaseModel):
        return frozenset(cls.model_fields)
    return frozenset()


def _class_at(cls: type[Any], loc: tuple[str | int, ...]) -> type[Any] | None:
    """The dataclass or model holding the keys at ``loc`` below ``cls`` (for "did you mean")."""
    for part in loc:
        if isinstance(part, int):
            continue
        found = _option_class(_field_types(cls).get(part))
        if found is None:
            return None
        cls = found
    return cls


def _field_types(cls: type[Any]) -> dict[str, Any]:
    if isinstance(cls, type) and issubclass(cls, BaseModel):
        return {name: info.annotation for name, info in cls.model_fields.items()}
    try:
        return typing.get_type_hints(cls)
    except Exception:  # an annotation that does not resolve: no suggestion, still an error
        return {}


def _option_class(annotation: Any) -> type[Any] | None:
    """The first dataclass or model in an annotation (``tuple[ChannelScaling, ...]``)."""
    if isinstance(annotation, type) and _field_names(annotation):
        return annotation
    for arg in typing.get_args(annotation):
        found = _option_class(arg)
        if found is not None:
            return found
    return None
