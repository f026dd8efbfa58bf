"""``/healthz`` (the process answers), ``/readyz`` (database and broker reachable) and
``/metrics`` (Prometheus text: what was received, stored, duplicated, refused by reason,
batch commit latency, consumer lag).  No token: probes and scrapers do not carry one."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from edge_cloud.ingest.api.deps import State

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, bool]


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(state: State) -> JSONResponse:
    # Each check is bounded in time and may block (a SELECT 1): off the event loop.
    checks = {name: await run_in_threadpool(check) for name, check in state.readiness.items()}
    body = Readiness(ready=all(checks.values()), checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(state: State) -> Response:
    return Response(generate_latest(state.registry), media_type=CONTENT_TYPE_LATEST)
