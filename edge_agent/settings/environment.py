"""``EDGE_…`` environment variables, read by pydantic-settings' environment source.

``EDGE_MQTT__PORT=8883`` sets ``[mqtt] port``: the prefix is dropped, ``__`` separates
nested keys, and names are case-insensitive.  The value for a table or a list
(``EDGE_MQTT__TLS``, ``EDGE_SENSORS``) is JSON; any other value stays a string, which
pydantic converts exactly as it converts a TOML value ("8883" → 8883).  What the
variables set comes back nested like the file's data, for ``load_settings`` to merge
over the file; this module only reads, and
:mod:`edge_agent.settings.environment_problems` words what went wrong.
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

    @property
    def source(self) -> str:
        """Where a problem with it came from, as a ``ConfigProblem`` says it."""
        return f"environment variable {self.name}"


@dataclass(frozen=True)
class Unread:
    """A variable that was read but set nothing: a variable above it left no table to set it in.

    ``at`` is the field path where the tables stop (``("mqtt", "tls")`` under
    ``EDGE_MQTT__TLS=null``), ``value`` what is there, ``by`` the variable that put it
    there; ``at == ()`` when the variable's own value was dropped (pydantic-settings drops a
    JSON ``null`` for a section)."""

    variable: Variable
    at: tuple[str, ...]
    value: Any
    by: Variable | None


@dataclass(frozen=True)
class EnvironmentData:
    variables: list[Variable]
    """The ``EDGE_…`` setting variables that were read: what a problem is attributed to."""
    data: dict[str, Any]
    """What the readable variables set, nested like the file's data."""
    unknown: list[Variable] = field(default_factory=list)
    """Variables whose first part names no section of the settings (``EDGE_MQQT__HOST``)."""
    undecodable: list[tuple[Variable, Exception]] = field(default_factory=list)
    """Variables pydantic-settings could not read (a table or list that is not JSON, or
    JSON nested deeper than the decoder recurses); with what it raised."""
    twice: list[tuple[Variable, ...]] = field(default_factory=list)
    """Variables naming the same setting (``EDGE_MQTT__PORT`` and ``edge_mqtt__port``), left unread."""
    unread: list[Unread] = field(default_factory=list)
    """Variables that were read and set nothing."""

    @property
    def error(self) -> Exception | None:
        """What reading raised, if anything (pydantic-settings' ``SettingsError``, or the JSON
        decoder's ``RecursionError``): the cause of the ``ConfigError``."""
        return self.undecodable[0][1] if self.undecodable else None


# What reading a variable raises: pydantic-settings' error for JSON it cannot decode, and
# the JSON decoder's RecursionError for arrays or objects nested ~1,000 deep, which
# pydantic-settings lets through.
_READ_ERRORS = (SettingsError, RecursionError)


def read_environment(environ: Mapping[str, str]) -> EnvironmentData:
    """The settings the ``EDGE_…`` variables of ``environ`` set; never raises."""
    every = [
        Variable(name, value)
        for name, value in environ.items()
        if name.upper().startswith(ENV_PREFIX) and name.upper() not in ENV_NOT_SETTINGS
    ]
    sections = set(Settings.model_fields)
    unknown = [v for v in every if v.path[0] not in sections]
    # Names are case-insensitive, so which of two spellings the source would keep is an
    # accident of the environment's order: neither is read, and one problem names both.
    twice = _same_setting([v for v in every if v.path[0] in sections])
    variables = [v for v in every if v.path[0] in sections and all(v not in group for group in twice)]
    try:
        data = _read(variables)
    except _READ_ERRORS:
        pass
    else:
        return EnvironmentData(variables, data, unknown, [], twice, _unread(variables, data))
    # The source stops at the first value it cannot decode and does not say which
    # variable held it: read each alone to find them, then the others together, so that
    # every other problem is still reported.
    undecodable: list[tuple[Variable, Exception]] = []
    for v in variables:
        try:
            _read([v])
        except _READ_ERRORS as exc:
            undecodable.append((v, exc))
    rest = [v for v in variables if all(v is not bad for bad, _ in undecodable)]
    try:
        data = _read(rest)
    except _READ_ERRORS as exc:  # only together do they fail: report them together
        undecodable += [(v, exc) for v in rest]
        rest, data = [], {}
    return EnvironmentData(variables, data, unknown, undecodable, twice, _unread(rest, data))


def _same_setting(variables: list[Variable]) -> list[tuple[Variable, ...]]:
    by_path: dict[tuple[str, ...], list[Variable]] = {}
    for v in variables:
        by_path.setdefault(v.path, []).append(v)
    return [tuple(sorted(group, key=lambda v: v.name)) for group in by_path.values() if len(group) > 1]


def _unread(variables: list[Variable], data: dict[str, Any]) -> list[Unread]:
    """Variables whose field path is not in ``data``: pydantic-settings drops a ``null``
    section and anything nested under a value that is not a table, without a word."""
    unread: list[Unread] = []
    for v in variables:
        at: tuple[str, ...] = ()
        node: Any = data
        for key in v.path:
            if not isinstance(node, dict) or key not in node:
                break
            at, node = (*at, key), node[key]
        else:
            continue  # the whole path is there: the variable took effect
        if isinstance(node, dict):  # the variable itself was dropped, not what is above it
            at, node = (), None
        # The most precise setter: EDGE_MQTT__TLS rather than EDGE_MQTT for mqtt.tls.
        setters = [s for s in variables if at and s.path == at[: len(s.path)]]
        by = max(setters, key=lambda s: len(s.path), default=None)
        unread.append(Unread(v, at, node, by))
    return unread


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
