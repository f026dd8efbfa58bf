"""What went wrong reading the ``EDGE_…`` variables, as :class:`ConfigProblem` lines.

Every setting variable either takes effect or is one of these, so that nothing a user
sets is ignored without a word: a variable naming no section ("did you mean"), one whose
table or list is not JSON, two spellings of one setting (names are case-insensitive),
and one that was read but set nothing (a ``null`` for a section, or a key under a
variable that sets a value rather than a table).  Each says what to do about it.
"""

from __future__ import annotations

import json
import typing

from pydantic_settings import SettingsError

from edge_agent.errors import ConfigProblem
from edge_agent.settings.environment import EnvironmentData, Unread, Variable
from edge_agent.settings.models import Settings
from edge_protocol.config_errors import unknown_key


def environment_problems(env: EnvironmentData) -> list[ConfigProblem]:
    """One problem per variable that does not take effect (two spellings of one setting: one for both)."""
    fields = set(Settings.model_fields)
    problems = [ConfigProblem(v.source, "", unknown_key(v.path[0], fields)) for v in env.unknown]
    for group in env.twice:
        names = ", ".join(v.name for v in group[:-1]) + f" and {group[-1].name}"
        problems.append(
            ConfigProblem(
                f"environment variables {names}",
                _path(group[0]),
                "set twice (variable names are case-insensitive); keep one",
            )
        )
    for v, exc in env.undecodable:
        problems.append(ConfigProblem(v.source, _path(v), _undecodable_message(exc)))
    for unread in env.unread:
        problems.append(
            ConfigProblem(unread.variable.source, _path(unread.variable), _unread_message(unread))
        )
    return problems


def _path(v: Variable) -> str:
    return ".".join(v.path)


def _undecodable_message(exc: Exception) -> str:
    """The JSON decoder's own words (line, column) when that is what pydantic-settings wraps."""
    if isinstance(exc, RecursionError):
        return "expected JSON for a table or list: nested too deeply to decode"
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, json.JSONDecodeError):
            return f"expected JSON for a table or list: {cause}"
        cause = cause.__cause__ or cause.__context__
    return f"cannot be read: {exc}" if isinstance(exc, SettingsError) else f"cannot be read: {exc!r}"


def _unread_message(unread: Unread) -> str:
    at, by = ".".join(unread.at), unread.by
    if by is None:
        if _is_json_null(unread.variable.value) and len(unread.variable.path) == 1:
            return _null_section_message(unread.variable.path[0])
        # Not seen with the pydantic-settings versions we support; said rather than dropped.
        return "has no effect (pydantic-settings did not read it); unset it"
    if unread.value is None:
        return f"has no effect: {by.name}=null turns {at} off; unset one of the two"
    if isinstance(unread.value, list):
        return (
            f"has no effect: {by.name} sets {at} to a list, which variables cannot reach into; "
            f"give the value in {by.name}'s JSON, or unset this one"
        )
    return f"has no effect: {by.name} sets {at} to a value, not a table; unset one of the two"


def _null_section_message(section: str) -> str:
    # pydantic-settings drops a JSON null for a section, and every key set under it.
    field = Settings.model_fields[section]
    if typing.get_origin(field.annotation) is list:
        return "has no effect: null does not empty a list; give a JSON list ([] for none)"
    if field.is_required():
        return "has no effect: null does not remove a table; give a JSON table"
    return (
        "has no effect: null does not remove a table; give a JSON table, "
        f"or remove [{section}] from the file for its defaults"
    )


def _is_json_null(value: str) -> bool:
    try:
        return json.loads(value) is None
    except (ValueError, RecursionError):
        return False
