"""``EDGE_…`` environment variables, read by pydantic-settings' environment source.

``EDGE_MQTT__PORT=8883`` sets ``[mqtt] port``: the prefix is dropped, ``__`` separates
nested keys, and names are case-insensitive.  The value for a table or a list
(``EDGE_MQTT__TLS``, ``EDGE_SENSORS``) is JSON; any other value stays a string, which
pydantic converts exactly as it converts a TOML value ("8883" → 8883).  What the
variables set comes back nested like the file's data, for ``load_settings`` to merge
over the file; this module only reads, :mod:`edge_agent.settings.problems` words what
went wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict, SettingsError

from edge_agent.settings.models import Settings

ENV_PREFIX = "EDGE_"
ENV_NESTING = "__"
ENV_NOT_SETTINGS = frozenset({"EDGE_CONFIG"})
"""``EDGE_`` variables that are not settings (the CLI reads ``EDGE_CONFIG`` itself)."""


@dataclass(frozen=True)
class Variable:
    """One ``EDGE_…`` variable and the field path it names, e.g. ``EDGE_MQTT__PORT`` → ``("mqtt", "port")``."""

    name: str
    value: str

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.name[len(ENV_PREFIX) :].lower().split(ENV_NESTING))


@dataclass(frozen=True)
class EnvironmentData:
    variables: list[Variable]
    """Every ``EDGE_…`` setting variable: what a problem is attributed to."""
    data: dict[str, Any]
    """What the readable variables set, nested like the file's data."""
    unknown: list[Variable] = field(default_factory=list)
    """Variables whose first part names no section of the settings (``EDGE_MQQT__HOST``)."""
    undecodable: list[tuple[Variable, SettingsError]] = field(default_factory=list)
    """Variables pydantic-settings could not read (a table or list that is not JSON)."""

    @property
    def error(self) -> SettingsError | None:
        """What pydantic-settings raised, if anything: the cause of the ``ConfigError``."""
        return self.undecodable[0][1] if self.undecodable else None


def read_environment(environ: Mapping[str, str]) -> EnvironmentData:
    """The settings the ``EDGE_…`` variables of ``environ`` set; never raises."""
    variables = [
        Variable(name, value)
        for name, value in environ.items()
        if name.upper().startswith(ENV_PREFIX) and name.upper() not in ENV_NOT_SETTINGS
    ]
    sections = set(Settings.model_fields)
    unknown = [v for v in variables if v.path[0] not in sections]
    readable = [v for v in variables if v.path[0] in sections]
    try:
        return EnvironmentData(variables, _read(readable), unknown)
    except SettingsError:
        pass
    # The source stops at the first value it cannot decode and does not say which
    # variable held it: read each alone to find them, then the others together, so that
    # every other problem is still reported.
    undecodable: list[tuple[Variable, SettingsError]] = []
    for v in readable:
        try:
            _read([v])
        except SettingsError as exc:
            undecodable.append((v, exc))
    rest = [v for v in readable if all(v is not bad for bad, _ in undecodable)]
    try:
        data = _read(rest)
    except SettingsError as exc:  # only together do they fail: report them together
        undecodable += [(v, exc) for v in rest]
        data = {}
    return EnvironmentData(variables, data, unknown, undecodable)


def _read(variables: list[Variable]) -> dict[str, Any]:
    return _Source({v.name: v.value for v in variables})()


class _EnvironmentSettings(BaseSettings, Settings):
    """:class:`Settings` as pydantic-settings' sources see it, with the ``EDGE_`` rules.

    ``Settings`` stays a plain model, so that one built directly ignores the environment;
    the source needs a ``BaseSettings`` class to read the fields and these rules from
    (pydantic-settings' own ``CliApp`` subclasses a plain model the same way).  Never
    built or validated, hence ``defer_build``: no second validator in memory."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_NESTING, case_sensitive=False, defer_build=True
    )


class _Source(EnvSettingsSource):
    """The environment source over the given variables rather than ``os.environ``."""

    def __init__(self, variables: Mapping[str, str]) -> None:
        self._variables = variables
        super().__init__(_EnvironmentSettings)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # The hook pydantic-settings' own dotenv source overrides (present since 2.x's
        # first releases).  Shorter names first: the source sets nested keys in the order
        # it meets them, and EDGE_MQTT__TLS='{…}' is the table EDGE_MQTT__TLS__CA_FILE
        # refines.  Lower-cased, as the source does for case_sensitive=False.
        ordered = sorted(self._variables.items(), key=lambda item: item[0].count(ENV_NESTING))
        return {name.lower(): value for name, value in ordered}
