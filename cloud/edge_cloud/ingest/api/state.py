"""What the HTTP API is given: :class:`ApiState` (``serve`` builds it; tests build their own)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine

from edge_cloud.common.jwt_verify import Claims
from edge_cloud.ingest.readiness import Check
from edge_cloud.ingest.settings import IngestSettings

if TYPE_CHECKING:
    from edge_cloud.ingest.commands import CommandClient
    from edge_cloud.ingest.importing import Importer


class TokenVerifier(Protocol):
    """``edge_cloud.common.jwks_client.RemoteJWKS`` (the auth service's keys, over HTTP) or
    a ``JWTVerifier`` on a fixed key set; raises ``TokenInvalid`` / ``ScopeMissing``."""

    def verify(self, token: str, *, scope: str | None = None) -> Claims: ...


@dataclass(frozen=True)
class ApiState:
    settings: IngestSettings
    engine: Engine
    """The ingest's database, read by the query routes."""
    token_verifier: TokenVerifier
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    """Served on ``/metrics``: the write path's metrics, and the API's own."""
    readiness: Mapping[str, Check] = field(default_factory=dict)
    """``/readyz``: each check by name (``database``, ``broker``); ready when all say True."""
    importer: Importer | None = None
    """``POST /v1/import``; None: the route answers 503."""
    commands: CommandClient | None = None
    """``POST /v1/devices/{id}/commands/{name}``; None: the route answers 503."""
