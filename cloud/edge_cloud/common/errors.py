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

from edge_protocol.config_errors import EX_CONFIG, ConfigInvalid, ConfigProblem

__all__ = ["EX_CONFIG", "CloudError", "ConfigError", "ConfigProblem", "ScopeMissing", "TokenInvalid"]


class CloudError(Exception):
    """Base class of the cloud services' own errors."""


class ConfigError(CloudError, ConfigInvalid):
    """The configuration cannot be used; ``problems`` lists every
    :class:`~edge_protocol.config_errors.ConfigProblem` found (the format every edge-*
    command shares)."""


class TokenInvalid(CloudError):
    """A bearer token failed verification."""


class ScopeMissing(TokenInvalid):
    """The token is valid but does not carry the scope the call needs."""

    def __init__(self, scope: str) -> None:
        super().__init__(f"this call needs the scope {scope!r}")
        self.scope = scope
