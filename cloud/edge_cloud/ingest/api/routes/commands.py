"""``POST /v1/devices/{device_id}/commands/{name}``: a remote command to a device, answered
with the device's reply (docs/PROTOCOL.md, Remote commands; docs/INGEST.md, Commands).

The body is the command's JSON object (empty: ``{}``; at most 64 KiB, the protocol's
limit, or 413 before anything is sent); ``timeout`` (1–60 s, default 10) bounds the wait,
and is also the request's MQTT Message Expiry Interval, so a device that connects later
does not execute it.  Scope ``devices:write``.

What the caller gets:

====  =================================================================================
200   the device's reply, ``{"command", "ok": true, "result": {…}}``
404   a device this ingest never stored anything of (nothing is sent)
409   the device refused to run it for a reason of its own: ``busy`` (its 8 pending
      commands), ``internal``, ``response_topic_rejected``, or a code this version does
      not know; the body carries the device's ``error``
413   the body is over 64 KiB
422   the request is wrong: the body is not a JSON object, or the device answered
      ``unknown_command`` / ``bad_request`` (body: the device's ``error``)
429   this process has 256 requests waiting already
502   the broker refused the request (e.g. 0x87 not authorised), or the reply is not
      the protocol's shape
503   no connection to the broker (none, or it dropped while waiting: the device may
      or may not have received the command)
504   no reply in time (offline, or no session of the device subscribed)
====  =================================================================================

The wait holds no thread: the route is ``async`` and awaits the reply
(:meth:`~edge_cloud.ingest.commands.CommandClient.request_async`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from edge_cloud.ingest.api.deps import PROBLEM, DevicesWrite, State
from edge_cloud.ingest.api.fleet_params import DEVICE_ID
from edge_cloud.ingest.commands import DeviceError, Reply
from edge_cloud.ingest.commands.client import COMMAND_NAME, MAX_REQUEST_BYTES
from edge_cloud.ingest.errors import CommandError
from edge_cloud.ingest.queries.devices import device_known

router = APIRouter(tags=["commands"])

DEFAULT_TIMEOUT = 10.0
MAX_TIMEOUT = 60.0
CALLER_ERRORS = frozenset({"unknown_command", "bad_request"})
"""Device error codes that say the request was wrong: 422.  Any other code: 409."""


class CommandReply(BaseModel):
    """The device's answer to the command."""

    command: str
    ok: Literal[True]
    result: dict[str, Any]


class DeviceRefusal(BaseModel):
    """The device answered ``ok: false``."""

    detail: str
    command: str
    error: DeviceError


RESPONSES: dict[int | str, dict[str, Any]] = {
    404: PROBLEM,
    409: {"model": DeviceRefusal, "description": "The device refused (busy, internal, …)"},
    413: PROBLEM,
    # Both shapes answer 422: FastAPI's for a request it cannot validate, ours for a
    # device that says the request is wrong.
    422: {
        "description": "The request is wrong (validation) or the device said so",
        "content": {
            "application/json": {
                "schema": {
                    "anyOf": [
                        {"$ref": "#/components/schemas/DeviceRefusal"},
                        {"$ref": "#/components/schemas/HTTPValidationError"},
                    ]
                }
            }
        },
    },
    429: PROBLEM,
    502: PROBLEM,
    503: PROBLEM,
    504: PROBLEM,
}


@router.post(
    "/v1/devices/{device_id}/commands/{name}",
    response_model=CommandReply,
    responses=RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": False,
            "description": "The command's arguments (docs/PROTOCOL.md); empty means {}",
            "content": {"application/json": {"schema": {"type": "object", "additionalProperties": True}}},
        }
    },
)
async def command(
    request: Request,
    state: State,
    _: DevicesWrite,
    device_id: Annotated[str, Path(pattern=DEVICE_ID)],
    name: Annotated[str, Path(pattern=COMMAND_NAME, description="ping, run-test, get-calibration")],
    timeout: Annotated[
        float, Query(ge=1, le=MAX_TIMEOUT, description="Seconds to wait for the reply")
    ] = DEFAULT_TIMEOUT,
) -> Any:
    """Send a command to a device and return its reply."""
    payload = await _body(request)
    if not await run_in_threadpool(_known, state.engine, device_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"device {device_id} was never seen")
    client = state.commands
    if client is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "commands are not available in this process")
    try:
        reply = await client.request_async(device_id, name, payload, timeout)
    except CommandError as exc:
        headers = {"Retry-After": "5"} if exc.status in (429, 503) else None
        raise HTTPException(exc.status, str(exc), headers) from exc
    return _answer(reply)


def _known(engine: Engine, device_id: str) -> bool:
    with engine.connect() as conn:
        return device_known(conn, device_id)


def _answer(reply: Reply) -> Any:
    if reply.ok:
        return CommandReply(command=reply.command, ok=True, result=reply.result or {})
    assert reply.error is not None
    code = 422 if reply.error.code in CALLER_ERRORS else 409
    refusal = DeviceRefusal(
        detail=f"the device refused {reply.command}: {reply.error.code}: {reply.error.message}",
        command=reply.command,
        error=reply.error,
    )
    return JSONResponse(jsonable_encoder(refusal), status_code=code)


async def _body(request: Request) -> dict[str, Any]:
    """The body as a JSON object ({} when empty); 413 past 64 KiB without reading further."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
        raise _too_large()
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_REQUEST_BYTES:
            raise _too_large()
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise _invalid_body(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise _invalid_body(f"a JSON object is required, not {type(value).__name__}")
    return value


def _too_large() -> HTTPException:
    return HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE, f"a command's body is at most {MAX_REQUEST_BYTES} bytes"
    )


def _invalid_body(message: str) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": ("body",), "msg": message, "input": None}])
