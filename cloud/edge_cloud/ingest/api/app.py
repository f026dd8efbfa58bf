"""The FastAPI application: ``create_app(state)``.

Errors map to statuses in one place: tokens (401, 403 for a missing scope; in
``deps.py``), a value the database refuses (422), a database that does not answer (503
with ``Retry-After``) — a cursor this API did not hand out (400) — never a 500 for bad input.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from edge_cloud.ingest.api.cursors import CursorInvalid
from edge_cloud.ingest.api.deps import SECURED_RESPONSES
from edge_cloud.ingest.api.routes import (
    alarms,
    commands,
    devices,
    gaps,
    health,
    imports,
    quarantine,
    readings,
    test_results,
)
from edge_cloud.ingest.api.state import ApiState
from edge_cloud.ingest.dashboard import mount as mount_dashboard
from edge_cloud.ingest.errors import StoreUnavailable

log = logging.getLogger(__name__)

ROUTERS = (health, imports, devices, readings, test_results, alarms, gaps, quarantine, commands)


def create_app(state: ApiState) -> FastAPI:
    app = FastAPI(
        title="edge-agent ingest service",
        version="1",
        description="What the fleet measured, stored once: devices, readings, test results, alarms, "
        "gaps, refused messages; remote commands; imports of exported outboxes.",
    )
    app.state.api = state
    app.state.token_verifier = state.token_verifier
    app.state.importer = state.importer
    for module in ROUTERS:
        app.include_router(module.router, responses=None if module is health else SECURED_RESPONSES)
    mount_dashboard(app)

    @app.exception_handler(CursorInvalid)
    async def _cursor(_request: Request, exc: CursorInvalid) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(sa.exc.DataError)
    async def _data(_request: Request, exc: sa.exc.DataError) -> JSONResponse:
        return JSONResponse({"detail": f"the database refused a value: {exc.orig}"}, status_code=422)

    @app.exception_handler(sa.exc.OperationalError)
    async def _unavailable(_request: Request, exc: sa.exc.OperationalError) -> JSONResponse:
        log.warning("database unavailable: %s", str(exc.orig).splitlines()[0] if exc.orig else exc)
        return JSONResponse(
            {"detail": "the database is not available; try again"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(StoreUnavailable)
    async def _store(_request: Request, exc: StoreUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "5"})

    return app
