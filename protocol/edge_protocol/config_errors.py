"""How every edge-* command reports a configuration it cannot use.

The device's ``edge-agent`` and the cloud's ``edge-auth`` keep one convention with their
operators and with systemd: every problem is named with the file (or environment
variable) it came from and its field path, all of them at once, and the process exits
78 (``EX_CONFIG``), which ``RestartPreventExitStatus=78`` does not restart-loop.  Each
package's exception tree has its own ``ConfigError``, a subclass of
:class:`ConfigInvalid` below, so both trees stay whole and the format is written once.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EX_CONFIG = 78
"""sysexits.h: configuration error.  systemd's RestartPreventExitStatus=78 stops a loop."""


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a configuration, located precisely."""

    source: str
    """The file, or the environment variable, the bad value came from."""
    path: str
    """Field path such as ``sensors[2].address``; empty for a whole-file problem."""
    message: str

    def __str__(self) -> str:
        where = f"{self.source}: {self.path}" if self.path else self.source
        return f"{where}: {self.message}"


class ConfigInvalid(Exception):
    """The configuration cannot be used; ``problems`` lists every one found."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def unknown_key(key: str, known: set[str]) -> str:
    """The message for a key no field has: ``unknown key 'adress' (did you mean 'address'?)``."""
    close = difflib.get_close_matches(key, sorted(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known keys: {', '.join(sorted(known))})"
    return f"unknown key {key!r}{hint}"


def read_toml(
    path: Path,
    *,
    error: type[ConfigInvalid] = ConfigInvalid,
    missing: str = "create it or pass --config PATH",
) -> dict[str, Any]:
    """The file's tables, or ``error`` (the caller's ``ConfigError``) with one problem saying
    why the file cannot be used; ``missing`` tells the operator what to do about a missing one."""
    source = str(path)
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError as exc:
        raise error([ConfigProblem(source, "", f"file not found; {missing}")]) from exc
    except PermissionError as exc:
        raise error([ConfigProblem(source, "", f"cannot read the file: {exc.strerror}")]) from exc
    except IsADirectoryError as exc:
        raise error([ConfigProblem(source, "", "is a directory, not a TOML file")]) from exc
    except OSError as exc:  # a symlink loop (ELOOP), an I/O error (EIO), a name too long…
        raise error([ConfigProblem(source, "", f"cannot read the file: {exc.strerror or exc}")]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise error([ConfigProblem(source, "", f"invalid TOML: {exc}")]) from exc
    except UnicodeDecodeError as exc:
        raise error([ConfigProblem(source, "", f"not UTF-8 text: {exc}")]) from exc
    except RecursionError as exc:  # tomllib recurses once per level of nested arrays and inline tables
        raise error([ConfigProblem(source, "", "invalid TOML: arrays or tables nested too deeply")]) from exc
    except ValueError as exc:
        # tomllib lets int()'s limit through (an integer of more than 4,300 digits); its
        # advice, sys.set_int_max_str_digits(), is for programmers, not for this file's author.
        reason = str(exc).partition("; use sys.set_int_max_str_digits()")[0]
        raise error([ConfigProblem(source, "", f"invalid TOML: {reason}")]) from exc
