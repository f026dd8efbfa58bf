"""Loading a cloud service's settings: a TOML file plus ``<PREFIX>…`` environment variables.

Each service declares a pydantic-settings class (``env_prefix`` such as ``AUTH_``,
nested with ``__``) and calls :func:`load_settings`; the result is validated settings or
a :class:`~edge_cloud.common.errors.ConfigError` naming, for every problem, the file or the
environment variable and the field path.  Environment variables win over the file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, TypeVar

from pydantic import BaseModel, BeforeValidator, ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsError

from edge_cloud.common.errors import ConfigError, ConfigProblem
from edge_protocol.config_errors import read_toml, unknown_key

S = TypeVar("S", bound=BaseSettings)

_SECONDS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|y)?\s*$")
_FACTOR = {"s": 1, "m": 60, "h": 3600, "d": 86400, "y": 365 * 86400}


def seconds(value: object) -> object:
    """``"15m"``, ``"90d"``, ``"10y"`` or a number of seconds -> seconds."""
    if isinstance(value, str):
        match = _SECONDS.match(value)
        if not match:
            raise ValueError(f'{value!r} is not a duration; use seconds or e.g. "15m", "12h", "90d", "10y"')
        return float(match.group(1)) * _FACTOR[match.group(2) or "s"]
    return value


Seconds = Annotated[float, BeforeValidator(seconds)]
"""A duration in seconds, written as a number or ``"15m"``/``"90d"``/``"10y"`` in the config."""


def load_settings(cls: type[S], path: Path | None, *, env_prefix: str) -> S:
    """Validated settings from ``path`` (optional) and the environment, or :class:`ConfigError`."""
    source = str(path) if path is not None else "(defaults)"
    data = read_toml(path, error=ConfigError) if path is not None else {}
    env_keys = {k for k in os.environ if k.upper().startswith(env_prefix)}
    problems = _unknown_env(cls, env_keys, env_prefix)
    try:
        settings = cls(**data)
    except ValidationError as exc:
        problems += [_problem(cls, err, source, env_keys, env_prefix) for err in exc.errors()]
        raise ConfigError(problems) from exc
    except (SettingsError, RecursionError) as exc:
        # A table's variable that is not JSON (or is nested too deeply to decode).
        problems += _undecodable_env(cls, env_keys, env_prefix, exc)
        raise ConfigError(problems) from exc
    if problems:
        raise ConfigError(problems)
    return settings


def _undecodable_env(
    cls: type[BaseModel], keys: set[str], prefix: str, exc: SettingsError | RecursionError
) -> list[ConfigProblem]:
    """pydantic-settings names the field it could not decode, not the variable: name the
    variables that set that field (all of them, when it names none we know)."""
    match = re.search(r'field "([^"]+)"', str(exc)) if isinstance(exc, SettingsError) else None
    named = sorted(k for k in keys if match and _env_path(k, prefix)[0] == match.group(1)) or sorted(keys)
    why = "nested too deeply to decode" if isinstance(exc, RecursionError) else "not valid JSON"
    return [
        ConfigProblem(
            f"environment variable {key}",
            ".".join(_env_path(key, prefix)),
            f"expected JSON for a table or list: {why}",
        )
        for key in named
    ]


def _env_path(key: str, prefix: str) -> tuple[str, ...]:
    return tuple(key[len(prefix) :].lower().split("__"))


def _unknown_env(cls: type[BaseModel], keys: set[str], prefix: str) -> list[ConfigProblem]:
    fields = set(cls.model_fields)
    return [
        ConfigProblem(f"environment variable {key}", "", unknown_key(_env_path(key, prefix)[0], fields))
        for key in sorted(keys)
        if _env_path(key, prefix)[0] not in fields
    ]


def _model_at(cls: type[BaseModel], loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    model = cls
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        inner = next(
            (
                a
                for a in (annotation, *getattr(annotation, "__args__", ()))
                if isinstance(a, type) and issubclass(a, BaseModel)
            ),
            None,
        )
        if inner is None:
            return None
        model = inner
    return model


def _problem(
    cls: type[BaseModel], err: ErrorDetails, source: str, env_keys: set[str], prefix: str
) -> ConfigProblem:
    loc = tuple(p for p in err["loc"] if isinstance(p, int) or not re.match(r"^[a-z-]+\[", str(p)))
    path = ".".join(str(p) for p in loc)
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        parent = _model_at(cls, loc[:-1])
        message = unknown_key(str(loc[-1]), set(parent.model_fields) if parent else set())
    elif err["type"] == "missing":
        message = "required but missing"
    for key in sorted(env_keys):
        env = _env_path(key, prefix)
        n = min(len(env), len(loc))
        if tuple(str(p) for p in loc[:n]) == env[:n]:
            return ConfigProblem(f"environment variable {key}", path, message)
    return ConfigProblem(source, path, message)
