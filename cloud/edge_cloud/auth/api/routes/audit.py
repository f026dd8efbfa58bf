"""``GET /v1/audit``: the audit log, newest first (admin)."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query

from edge_cloud.auth.api.deps import Admin, ServiceDep
from edge_cloud.auth.api.schemas import AuditEntry, Problem
from edge_cloud.auth.tables import audit_log

router = APIRouter(tags=["audit"], responses={401: {"model": Problem}, 403: {"model": Problem}})


@router.get("/v1/audit", response_model=list[AuditEntry])
def list_audit(
    _who: Admin,
    service: ServiceDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> list[AuditEntry]:
    query = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(audit_log.c.id < before_id)
    with service.engine.connect() as conn:
        return [AuditEntry(**r._mapping) for r in conn.execute(query)]
