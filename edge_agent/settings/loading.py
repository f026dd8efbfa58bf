"""Loading the settings: the TOML file, the ``EDGE_…`` variables over it, then the checks.

Precedence, highest first: environment variables (``EDGE_MQTT__HOST``, read by
pydantic-settings: :mod:`edge_agent.settings.environment`), then the TOML file
(``--config PATH``, default ``/etc/edge-agent/edge-agent.toml``), then the models'
defaults.  A variable's table merges into the file's table key by key, so
``EDGE_MQTT__HOST`` leaves the file's other ``[mqtt]`` keys alone; anything else (a
value, a list) replaces what the file says.

The file is read with ``tomllib`` rather than pydantic-settings' TOML source, which takes
a missing file for an empty one and has no words for an unreadable or broken one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edge_agent.errors import ConfigError, ConfigProblem
from edge_agent.sampling.registry import DriverRegistry, load_registry
from edge_agent.settings.checks import check_drivers, check_tests
from edge_agent.settings.enrolled import apply_enrolled_identity
from edge_agent.settings.environment import read_environment
from edge_agent.settings.environment_problems import environment_problems
from edge_agent.settings.models import Settings
from edge_agent.settings.problems import format_path, source_of, validation_problems
from edge_protocol.config_errors import read_toml

DEFAULT_CONFIG_PATH = Path("/etc/edge-agent/edge-agent.toml")
_MISSING = "create it or pass --config PATH (config/edge-agent.toml in the source tree is a simulated setup)"


def load_settings(
    path: Path = DEFAULT_CONFIG_PATH,
    *,
    environ: Mapping[str, str] | None = None,
    registry: DriverRegistry | None = None,
) -> Settings:
    """Read, validate and cross-check the configuration, or raise :class:`ConfigError`.

    ``environ`` defaults to ``os.environ``; the error lists *every* problem found, each
    with the file or the environment variable it came from and its field path."""
    source = str(path)
    env = read_environment(os.environ if environ is None else environ)
    data = _merged(read_toml(path, error=ConfigError, missing=_MISSING), env.data)
    problems = environment_problems(env)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems += validation_problems(exc, file=source, data=data, variables=env.variables)
        # Caused by what pydantic-settings raised, if anything; the ValidationError stays the context.
        raise ConfigError(problems) from (env.error or exc)
    if problems:
        raise ConfigError(problems) from env.error
    registry = registry or load_registry()

    def where(loc: tuple[str | int, ...]) -> str:
        return source_of(loc, source, env.variables)

    settings, problems = check_drivers(settings, where, registry)
    problems += check_tests(settings, where, registry)
    settings, unresolved = _resolve_paths(settings, path.parent)
    problems += [
        ConfigProblem(where(loc), format_path(loc), f"cannot be resolved: {exc}") for loc, exc in unresolved
    ]
    if problems:
        raise ConfigError(problems) from (unresolved[0][1] if unresolved else None)
    return apply_enrolled_identity(settings)


def _merged(file: Mapping[str, Any], env: Mapping[str, Any]) -> dict[str, Any]:
    """``env`` over ``file``: a table merges into the table already there key by key,
    anything else replaces it.  Neither argument is modified."""
    out = dict(file)
    for key, value in env.items():
        old = out.get(key)
        out[key] = _merged(old, value) if isinstance(old, Mapping) and isinstance(value, Mapping) else value
    return out


def _resolve_paths(
    settings: Settings, base: Path
) -> tuple[Settings, list[tuple[tuple[str, ...], Exception]]]:
    """Relative paths in the file are relative to its folder, not to the working directory.

    Resolving follows symlinks, so a loop shows here: it is returned with its field, to be
    reported like every other configuration problem, and the path is left as written."""
    unresolved: list[tuple[tuple[str, ...], Exception]] = []

    def resolve(loc: tuple[str, ...], p: Path) -> Path:
        if p.is_absolute():
            return p
        try:
            return (base / p).resolve()
        except (OSError, RuntimeError) as exc:  # Python 3.11 and 3.12 raise RuntimeError for a loop
            unresolved.append((loc, exc))
            return p

    state_dir = resolve(("storage", "state_dir"), settings.storage.state_dir)
    storage = settings.storage.model_copy(update={"state_dir": state_dir})
    mqtt = settings.mqtt
    if mqtt.tls is not None:
        tls = mqtt.tls
        files = {
            k: resolve(("mqtt", "tls", k), v)
            for k, v in (("ca_file", tls.ca_file), ("cert_file", tls.cert_file), ("key_file", tls.key_file))
            if v is not None
        }
        mqtt = mqtt.model_copy(update={"tls": tls.model_copy(update=files)})
    return settings.model_copy(update={"storage": storage, "mqtt": mqtt}), unresolved
