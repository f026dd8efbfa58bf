"""Errors shared by the cloud services.

::

    CloudError
     ├── ConfigError          the service's configuration is invalid; carries every
     │                        ConfigProblem.  Never retried: the CLI exits 78 (EX_CONFIG).
     └── TokenInvalid         a bearer token failed verification (bad signature, wrong
          │                   alg, expired, wrong issuer/audience, unknown key id)
          └── ScopeMissing    the token is valid but lacks a scope the call needs

Each service has its own tree below :class:`CloudError` (``edge_cloud.auth.errors``).
"""

from __future__ import annotations

from dataclasses import dataclass

EX_CONFIG = 78
"""sysexits.h: configuration error; systemd's RestartPreventExitStatus=78 stops a loop."""


class CloudError(Exception):
    """Base class of the cloud services' own errors."""


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a configuration, located precisely."""

    source: str
    """The file, or the environment variable, the bad value came from."""
    path: str
    """Field path such as ``broker.port``; empty for a whole-file problem."""
    message: str

    def __str__(self) -> str:
        where = f"{self.source}: {self.path}" if self.path else self.source
        return f"{where}: {self.message}"


class ConfigError(CloudError):
    """The configuration cannot be used; ``problems`` lists every one found."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class TokenInvalid(CloudError):
    """A bearer token failed verification."""


class ScopeMissing(TokenInvalid):
    """The token is valid but does not carry the scope the call needs."""

    def __init__(self, scope: str) -> None:
        super().__init__(f"this call needs the scope {scope!r}")
        self.scope = scope
