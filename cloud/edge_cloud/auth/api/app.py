"""The FastAPI application: ``create_app(service)``.

Errors map to statuses in one place: the service's own (``AuthServiceError.status``),
token failures (401, or 403 for a missing scope), and database data errors (a value the
database refuses, e.g. a NUL byte on PostgreSQL: 422) — never a 500 for bad input.
Request bodies are bounded (``server.max_body_bytes``: 413 while the body streams in,
FastAPI's ``max_body_size``), and a 422 never echoes the input back: an attacker's
100 MiB body must not come back as a 100 MiB answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from edge_cloud.auth.api.deps import client_address
from edge_cloud.auth.api.routes import api_keys, audit, devices, enroll, operators, token, wellknown
from edge_cloud.auth.api.schemas import Problem
from edge_cloud.auth.errors import AuthServiceError, BrokerSyncError, RateLimited
from edge_cloud.auth.service import AuthService
from edge_cloud.common.errors import ScopeMissing, TokenInvalid

log = logging.getLogger(__name__)

BROKER_REFRESH_S = 86400.0
"""Rewrite the broker files (a fresh CRL) this often, well inside the CRL's nextUpdate."""


def create_app(service: AuthService, *, refresh_interval: float = BROKER_REFRESH_S) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_refresh_broker(service, refresh_interval), name="broker-refresh")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(
        title="edge-agent auth service",
        version="1",
        description="Operators, scoped tokens, device enrollment, certificates and revocation.",
        lifespan=lifespan,
        max_body_size=service.settings.server.max_body_bytes,
    )
    app.state.service = service
    for module in (wellknown, token, devices, enroll, api_keys, operators, audit):
        # 400: a body that is not JSON at all (FastAPI answers before validation).
        app.include_router(module.router, responses={400: {"model": Problem}})

    @app.exception_handler(AuthServiceError)
    async def _service_error(request: Request, exc: AuthServiceError) -> JSONResponse:
        headers = {}
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = str(exc.retry_after)
            await asyncio.to_thread(_audit_rate_limited, service, request, exc)
        if exc.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        if isinstance(exc, BrokerSyncError):
            log.error("broker sync failed: %s", exc)
        return JSONResponse({"detail": str(exc)}, status_code=exc.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        response = await http_exception_handler(request, exc)
        if exc.status_code == 413:
            # A body cut off as it streams in: close the connection, else uvicorn goes on
            # reading (and dropping) the rest to keep it for a next request.  (A declared
            # Content-Length over the limit gets Starlette's own 413, before any reading.)
            response.headers["Connection"] = "close"
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default answer repeats each offending value ("input") in full.
        problems = [{k: e[k] for k in ("type", "loc", "msg") if k in e} for e in exc.errors()]
        return JSONResponse({"detail": problems}, status_code=422)

    @app.exception_handler(ScopeMissing)
    async def _scope(_request: Request, exc: ScopeMissing) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=403)

    @app.exception_handler(TokenInvalid)
    async def _token(_request: Request, exc: TokenInvalid) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=401, headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(sa.exc.DataError)
    async def _data(_request: Request, exc: sa.exc.DataError) -> JSONResponse:
        return JSONResponse({"detail": f"the database refused a value: {exc.orig}"}, status_code=422)

    return app


def _audit_rate_limited(service: AuthService, request: Request, exc: RateLimited) -> None:
    """The limits count failures per account and per address; who was refused is not known
    here (the account is in the refused form), so the row names the address and the call."""
    service.refusals.record(
        "access.rate_limited",
        actor=None,
        address=client_address(request, service),
        reason=str(exc),
        target=f"{request.method} {request.url.path}",
    )


async def _refresh_broker(service: AuthService, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(service.broker.apply)
        except AuthServiceError as exc:
            log.error("daily broker refresh failed: %s", exc)
