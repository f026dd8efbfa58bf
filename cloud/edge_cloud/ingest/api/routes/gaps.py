"""``GET /v1/devices/{id}/gaps``: per epoch, the seqs missing and whether the device said
it evicted them (``queries/gaps.py`` has the arithmetic); the missing ranges are paged on
``(epoch, first_seq)``, the per-epoch figures and totals come whole.  Scope ``events:read``."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel

from edge_cloud.ingest.api.deps import EventsRead, State
from edge_cloud.ingest.api.fleet_cursors import decode_key, encode_key
from edge_cloud.ingest.api.fleet_params import CURSOR_404, DEFAULT_LIMIT, DEVICE_ID, MAX_LIMIT, NAME
from edge_cloud.ingest.queries.devices import device_known
from edge_cloud.ingest.queries.gaps import device_gaps

LISTING = "gaps"

router = APIRouter(tags=["events"])


class MissingOut(BaseModel):
    epoch: str
    first_seq: int
    last_seq: int
    count: int
    state: Literal["evicted", "exported", "unknown"]
    """``evicted``: a gap event reported them dropped; ``exported``: written to a file on the
    device (``buffer export --mark-exported``), stored once that file is imported;
    ``unknown``: on their way, or lost."""


class EpochOut(BaseModel):
    epoch: str
    received: int
    """Seqs received (stored, or refused one by one: those are in the quarantine)."""
    last_known_seq: int
    """The highest seq received or reported evicted: nothing after it counts as missing."""
    evicted: int
    exported: int
    unknown: int


class Totals(BaseModel):
    received: int
    evicted: int
    exported: int
    unknown: int


class GapsPage(BaseModel):
    device_id: str
    epochs: list[EpochOut]
    totals: Totals
    missing: list[MissingOut]
    next_cursor: str | None
    """More missing ranges follow: pass as ``cursor``."""


@router.get(
    "/v1/devices/{device_id}/gaps",
    response_model=GapsPage,
    responses=CURSOR_404,
)
def gaps(
    state: State,
    _: EventsRead,
    device_id: Annotated[str, Path(pattern=DEVICE_ID)],
    epoch: Annotated[str | None, Query(pattern=NAME, description="only this outbox epoch")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> GapsPage:
    """Missing seq ranges by epoch and first seq, each ``evicted``, ``exported`` or ``unknown``."""
    start = decode_key(LISTING, cursor, (str, int)) if cursor is not None else None
    with state.engine.connect() as conn:
        if not device_known(conn, device_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"device {device_id} was never seen")
        epochs = device_gaps(conn, device_id, epoch)
    missing = [m for e in epochs for m in e.missing]
    if start is not None:
        missing = [m for m in missing if (m.epoch, m.first_seq) > start]
    page = missing[:limit]
    summaries = [
        EpochOut(
            epoch=e.epoch,
            received=e.received,
            last_known_seq=e.last_known_seq,
            evicted=e.total("evicted"),
            exported=e.total("exported"),
            unknown=e.total("unknown"),
        )
        for e in epochs
    ]
    return GapsPage(
        device_id=device_id,
        epochs=summaries,
        totals=Totals(
            received=sum(e.received for e in summaries),
            evicted=sum(e.evicted for e in summaries),
            exported=sum(e.exported for e in summaries),
            unknown=sum(e.unknown for e in summaries),
        ),
        missing=[
            MissingOut(
                epoch=m.epoch, first_seq=m.first_seq, last_seq=m.last_seq, count=m.count, state=m.state
            )
            for m in page
        ],
        next_cursor=encode_key(LISTING, page[-1].epoch, page[-1].first_seq) if len(missing) > limit else None,
    )
