"""The dashboard's pages under ``/ui/``: fleet, device, alarms, and the login.

Server-rendered (Jinja2); each page's live parts are fragments the page fetches again
every few seconds (``/rows``, ``/live``), and a chart's points are JSON from the API's
downsampling.  Seeing needs ``devices:read``; the "run test now" button needs
``devices:write`` and goes through the same command client as
``POST /v1/devices/{id}/commands/run-test``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.engine import Connection
from starlette.concurrency import run_in_threadpool

from edge_cloud.common.jwt_verify import Claims
from edge_cloud.ingest.api.deps import State
from edge_cloud.ingest.api.fleet_params import DEVICE_ID, NAME, SENSOR
from edge_cloud.ingest.api.state import ApiState
from edge_cloud.ingest.dashboard import session, views
from edge_cloud.ingest.errors import CommandError, LoginFailed

READ = "devices:read"
WRITE = "devices:write"
POLL_S = 3
RUN_TEST_TIMEOUT_S = 30.0

templates = Jinja2Templates(directory=Path(__file__).with_name("templates"))
router = APIRouter(prefix="/ui", include_in_schema=False)


def _page(request: Request, name: str, claims: Claims | None, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        name,
        {
            "claims": claims,
            "can_write": claims is not None and claims.has(WRITE),
            "poll_s": POLL_S,
            **context,
        },
    )


def _login_redirect() -> RedirectResponse:
    return RedirectResponse("/ui/login", status_code=status.HTTP_303_SEE_OTHER)


def _valid_device(device_id: str) -> str:
    if not re.fullmatch(DEVICE_ID, device_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such device")
    return device_id


@router.get("")
@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/ui/fleet", status_code=status.HTTP_303_SEE_OTHER)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request) -> HTMLResponse:
    return _page(request, "login.html", None, error=None)


@router.post("/login", response_model=None)
async def login(
    request: Request,
    state: State,
    username: Annotated[str, Form(max_length=256)],
    password: Annotated[str, Form(max_length=256)],
) -> Response:
    if not session.same_origin(request):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-site login refused")
    try:
        token, ttl = await run_in_threadpool(session.login, state.settings.auth.login_url, username, password)
    except LoginFailed as exc:
        page = _page(request, "login.html", None, error=str(exc))
        page.status_code = exc.status
        return page
    answer = RedirectResponse("/ui/fleet", status_code=status.HTTP_303_SEE_OTHER)
    answer.set_cookie(
        session.COOKIE,
        token,
        max_age=ttl,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return answer


@router.post("/logout")
def logout(request: Request) -> RedirectResponse:
    # A cross-site form post would log the operator out (its answer's Set-Cookie is taken
    # on a top-level navigation, SameSite or not).
    if not session.same_origin(request):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-site logout refused")
    answer = _login_redirect()
    answer.delete_cookie(session.COOKIE, path="/ui")
    return answer


def _read(request: Request, state: ApiState) -> Claims | None:
    return session.claims(request, state, READ)


def _fleet_wide(
    request: Request,
    state: ApiState,
    template: str,
    load: Callable[[Connection], object],
    key: str,
    *,
    whole: bool,
) -> Response:
    """A fleet-wide page (``whole``) or its polled fragment: without a session the page
    asks to log in, the fragment answers 401 (the page's script then goes to the login)."""
    claims = _read(request, state)
    if claims is None:
        return _login_redirect() if whole else Response(status_code=status.HTTP_401_UNAUTHORIZED)
    with state.engine.connect() as conn:
        found = load(conn)
    return _page(request, template, claims, fleet=True, now=datetime.now(UTC), **{key: found})


@router.get("/fleet", response_class=HTMLResponse, response_model=None)
def fleet(request: Request, state: State) -> Response:
    return _fleet_wide(request, state, "fleet.html", views.fleet, "rows", whole=True)


@router.get("/fleet/rows", response_class=HTMLResponse, response_model=None)
def fleet_rows(request: Request, state: State) -> Response:
    return _fleet_wide(request, state, "fleet_rows.html", views.fleet, "rows", whole=False)


@router.get("/alarms", response_class=HTMLResponse, response_model=None)
def alarms(request: Request, state: State) -> Response:
    return _fleet_wide(request, state, "alarms.html", views.fleet_alarms, "alarms", whole=True)


@router.get("/alarms/rows", response_class=HTMLResponse, response_model=None)
def alarm_rows(request: Request, state: State) -> Response:
    return _fleet_wide(request, state, "alarm_rows.html", views.fleet_alarms, "alarms", whole=False)


def _device_page(
    request: Request, state: ApiState, claims: Claims, device_id: str, template: str, **extra: Any
) -> Response:
    with state.engine.connect() as conn:
        view = views.device(conn, _valid_device(device_id))
    if view is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"device {device_id} was never seen")
    return _page(request, template, claims, view=view, spans=list(views.SPANS), fleet=False, **extra)


@router.get("/devices/{device_id}", response_class=HTMLResponse, response_model=None)
def device(request: Request, state: State, device_id: str) -> Response:
    claims = _read(request, state)
    if claims is None:
        return _login_redirect()
    return _device_page(request, state, claims, device_id, "device.html", reply=None)


@router.get("/devices/{device_id}/live", response_class=HTMLResponse, response_model=None)
def device_live(request: Request, state: State, device_id: str) -> Response:
    claims = _read(request, state)
    if claims is None:
        return Response(status_code=status.HTTP_401_UNAUTHORIZED)
    return _device_page(request, state, claims, device_id, "device_live.html")


@router.get("/devices/{device_id}/series", response_model=None)
def device_series(
    request: Request,
    state: State,
    device_id: str,
    sensor: Annotated[str, Query(pattern=SENSOR)],
    quantity: Annotated[str, Query(pattern=NAME)],
    span: views.Span = "1h",
) -> Response:
    if _read(request, state) is None:
        return Response(status_code=status.HTTP_401_UNAUTHORIZED)
    with state.engine.connect() as conn:
        points = views.chart(conn, _valid_device(device_id), sensor, quantity, span)
    return JSONResponse(dataclasses.asdict(points))


@router.post("/devices/{device_id}/run-test", response_class=HTMLResponse, response_model=None)
async def run_test(
    request: Request, state: State, device_id: str, test: Annotated[str, Form(max_length=64)] = ""
) -> Response:
    claims = session.claims(request, state, WRITE)
    if claims is None:
        return _login_redirect()
    if not session.same_origin(request):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-site command refused")
    client = state.commands
    reply: dict[str, Any]
    if client is None:
        reply = {"ok": False, "detail": "commands are not available in this process"}
    else:
        body: dict[str, Any] = {"test": test} if test else {"all": True}
        try:
            answer = await client.request_async(
                _valid_device(device_id), "run-test", body, RUN_TEST_TIMEOUT_S
            )
        except CommandError as exc:
            reply = {"ok": False, "detail": str(exc)}
        else:
            reply = {
                "ok": answer.ok,
                "result": answer.result or {},
                "detail": f"{answer.error.code}: {answer.error.message}" if answer.error else None,
            }
    return await run_in_threadpool(
        _device_page, request, state, claims, device_id, "device.html", reply=reply
    )
