"""``GET /.well-known/jwks.json`` (the keys other services verify tokens with) and ``/healthz``."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Response

from edge_cloud.auth.api.deps import ServiceDep

router = APIRouter(tags=["keys"])


@router.get("/.well-known/jwks.json", summary="Public keys of the access tokens")
def jwks(service: ServiceDep, response: Response) -> dict[str, Any]:
    response.headers["Cache-Control"] = "public, max-age=300"
    return service.keys.jwks()


@router.get("/healthz", summary="Liveness and database reachability")
def healthz(service: ServiceDep) -> dict[str, str]:
    with service.engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    return {"status": "ok"}
