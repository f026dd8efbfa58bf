"""API keys for scripts (admin only): issue (secret shown once), list, revoke."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, status

from edge_cloud.auth import api_keys
from edge_cloud.auth.api.deps import AddressDep, Admin, ServiceDep
from edge_cloud.auth.api.schemas import ApiKey, ApiKeyCreate, ApiKeyCreated, Problem

router = APIRouter(tags=["api keys"], responses={401: {"model": Problem}, 403: {"model": Problem}})


def _model(row: Any) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        scopes=row.scopes.split(),
        created_by=row.created_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


@router.post("/v1/api-keys", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated)
def create_api_key(body: ApiKeyCreate, who: Admin, service: ServiceDep, address: AddressDep) -> ApiKeyCreated:
    with service.transaction() as conn:
        key, secret = api_keys.create(
            conn,
            name=body.name,
            scopes=list(body.scopes),
            now=service.now(),
            actor=who.name,
            ttl=body.ttl_seconds,
            address=address,
        )
        row = next(r for r in api_keys.list_keys(conn) if r.id == key.id)
    return ApiKeyCreated(**_model(row).model_dump(), key=secret)


@router.get("/v1/api-keys", response_model=list[ApiKey])
def list_api_keys(_who: Admin, service: ServiceDep) -> list[ApiKey]:
    with service.engine.connect() as conn:
        return [_model(r) for r in api_keys.list_keys(conn)]


@router.delete(
    "/v1/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT, responses={404: {"model": Problem}}
)
def revoke_api_key(
    key_id: Annotated[str, Path(pattern=r"^[0-9a-f]{16}$")],
    who: Admin,
    service: ServiceDep,
    address: AddressDep,
) -> None:
    with service.transaction() as conn:
        api_keys.revoke(conn, key_id, now=service.now(), actor=who.name, address=address)
    service.subjects.forget()  # the key's access tokens (client_credentials) stop now
