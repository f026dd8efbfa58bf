"""``POST /v1/import?device_id=…``: a file written by ``edge-agent buffer export`` (the USB-stick path).

The body is the file itself (``curl --data-binary @events.jsonl``), read as it arrives
and stored in transactions as they fill (``edge_cloud.ingest.importing``), with the same
validation, de-duplication and end-to-end acks as events that come over MQTT.

What it takes from ``request.app.state``:

- ``importer``: an :class:`~edge_cloud.ingest.importing.Importer` (``serve`` builds it:
  ``ServeParts.importer``);
- ``token_verifier`` (``api/deps.py``): the call needs the scope ``devices:write``.
  Without a verifier the route answers 503: it never stores anything unauthenticated.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from edge_cloud.ingest.api.deps import require
from edge_cloud.ingest.errors import ImportRefused, StoreRejected, StoreUnavailable
from edge_cloud.ingest.importing import Importer
from edge_protocol.wire import DEVICE_ID_PATTERN

IMPORT_SCOPE = "devices:write"


require_import_scope = require(IMPORT_SCOPE)


class ImportResult(BaseModel):
    device_id: str
    lines: int
    events: int
    stored: int
    duplicates: int
    refused: int
    acks_published: int
    epochs: list[str]


router = APIRouter(tags=["import"])


@router.post(
    "/v1/import",
    response_model=ImportResult,
    dependencies=[Depends(require_import_scope)],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/x-ndjson": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def import_export_file(
    request: Request,
    device_id: Annotated[
        str, Query(pattern=DEVICE_ID_PATTERN.pattern, description="The device whose outbox was exported")
    ],
) -> ImportResult:
    """Store the events of an ``edge-agent buffer export`` file once each and acknowledge them."""
    importer: Importer | None = getattr(request.app.state, "importer", None)
    if importer is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "imports are not available in this process")
    try:
        run = await run_in_threadpool(importer.start, device_id)
        async for chunk in request.stream():
            if chunk:
                await run_in_threadpool(run.feed, chunk)
        report = await run_in_threadpool(run.finish)
    except ImportRefused as exc:
        raise HTTPException(exc.status, str(exc)) from exc
    except StoreUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc), {"Retry-After": "30"}) from exc
    except StoreRejected as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
    return ImportResult(
        device_id=report.device_id,
        lines=report.lines,
        events=report.events,
        stored=report.stored,
        duplicates=report.duplicates,
        refused=report.refused,
        acks_published=report.acks_published,
        epochs=sorted(report.epochs),
    )
