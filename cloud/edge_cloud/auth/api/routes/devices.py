"""The device registry: create (with its one-time enrollment token), list, get, disable,
enable, revoke, new enrollment token, batch claim tokens.  State changes rewrite the
broker files and reload the broker before the response is sent."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, status

from edge_cloud.auth import registry, revocation
from edge_cloud.auth.api.deps import AddressDep, Admin, DevicesRead, DevicesWrite, ServiceDep
from edge_cloud.auth.api.schemas import (
    ClaimToken,
    ClaimTokenCreate,
    Device,
    DeviceCreate,
    DeviceCreated,
    EnrollmentToken,
    Problem,
)
from edge_cloud.auth.registry import DEVICE_ID_PATTERN, Actor
from edge_cloud.auth.service import AuthService

router = APIRouter(tags=["devices"], responses={401: {"model": Problem}, 403: {"model": Problem}})

DeviceIdPath = Annotated[str, Path(pattern=DEVICE_ID_PATTERN)]


def _device(service: AuthService, device_id: str) -> Device:
    with service.engine.connect() as conn:
        row = registry.get_device(conn, device_id)
        cert = registry.current_certificate(conn, device_id)
    return _to_model(row._mapping, cert._mapping if cert else None)


def _to_model(row: Any, cert: Any) -> Device:
    return Device(
        id=row["id"],
        status=row["status"],
        auth_mode=row["auth_mode"],
        description=row["description"],
        created_at=row["created_at"],
        enrolled_at=row["enrolled_at"],
        changed_at=row["changed_at"],
        certificate_serial=cert["serial"] if cert else None,
        certificate_not_after=cert["not_after"] if cert else None,
    )


@router.post(
    "/v1/devices",
    status_code=status.HTTP_201_CREATED,
    response_model=DeviceCreated,
    responses={409: {"model": Problem}},
)
def create_device(body: DeviceCreate, who: Admin, service: ServiceDep, address: AddressDep) -> DeviceCreated:
    """Create a device; the response carries its one-time enrollment token (shown once)."""
    with service.transaction() as conn:
        token, expires = registry.create_device(
            conn,
            body.id,
            description=body.description,
            now=service.now(),
            token_ttl=service.settings.enrollment.token_ttl,
            actor=Actor(who.name, address),
            reserved=service.reserved_ids,
        )
    device = _device(service, body.id)
    return DeviceCreated(**device.model_dump(), enrollment_token=token, enrollment_token_expires_at=expires)


@router.get("/v1/devices", response_model=list[Device])
def list_devices(
    _who: DevicesRead,
    service: ServiceDep,
    status_filter: Annotated[
        Literal["pending", "active", "disabled", "revoked"] | None, Query(alias="status")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[Device]:
    with service.engine.connect() as conn:
        rows = registry.list_devices(conn, status=status_filter, limit=limit, offset=offset)
        return [
            _to_model(
                r._mapping, c._mapping if (c := registry.current_certificate(conn, str(r.id))) else None
            )
            for r in rows
        ]


@router.get("/v1/devices/{device_id}", response_model=Device, responses={404: {"model": Problem}})
def get_device(device_id: DeviceIdPath, _who: DevicesRead, service: ServiceDep) -> Device:
    return _device(service, device_id)


def _set_status(service: AuthService, device_id: str, new: str, who: Any, address: str) -> Device:
    with service.transaction() as conn:
        registry.set_status(conn, device_id, new, now=service.now(), actor=Actor(who.name, address))
    if new == "active":
        service.broker.apply()
    else:
        revocation.cut_off(service, device_id)
    return _device(service, device_id)


_state_responses: dict[int | str, dict[str, Any]] = {404: {"model": Problem}, 409: {"model": Problem}}


@router.post("/v1/devices/{device_id}/disable", response_model=Device, responses=_state_responses)
def disable_device(
    device_id: DeviceIdPath, who: DevicesWrite, service: ServiceDep, address: AddressDep
) -> Device:
    """The broker denies the device everything (its live session is cut); enable undoes it."""
    return _set_status(service, device_id, "disabled", who, address)


@router.post("/v1/devices/{device_id}/enable", response_model=Device, responses=_state_responses)
def enable_device(
    device_id: DeviceIdPath, who: DevicesWrite, service: ServiceDep, address: AddressDep
) -> Device:
    return _set_status(service, device_id, "active", who, address)


@router.post("/v1/devices/{device_id}/revoke", response_model=Device, responses=_state_responses)
def revoke_device(
    device_id: DeviceIdPath, who: DevicesWrite, service: ServiceDep, address: AddressDep
) -> Device:
    """Final: certificates on the CRL, password removed, ACL denies everything, broker
    reloaded — the live session is cut and a reconnect refused within seconds."""
    return _set_status(service, device_id, "revoked", who, address)


@router.post(
    "/v1/devices/{device_id}/enrollment-token",
    status_code=status.HTTP_201_CREATED,
    response_model=EnrollmentToken,
    responses=_state_responses,
)
def new_enrollment_token(
    device_id: DeviceIdPath, who: Admin, service: ServiceDep, address: AddressDep
) -> EnrollmentToken:
    """A new one-time token (a replaced SD card, a lost token); earlier unused ones stop working."""
    with service.transaction() as conn:
        token, expires = registry.issue_device_token(
            conn,
            device_id,
            now=service.now(),
            ttl=service.settings.enrollment.token_ttl,
            actor=Actor(who.name, address),
        )
    return EnrollmentToken(device_id=device_id, enrollment_token=token, expires_at=expires)


@router.post("/v1/claim-tokens", status_code=status.HTTP_201_CREATED, response_model=ClaimToken)
def create_claim_token(
    body: ClaimTokenCreate, who: Admin, service: ServiceDep, address: AddressDep
) -> ClaimToken:
    """A batch token for factory images: enrolls up to ``uses`` new devices, each naming its id."""
    ttl = body.ttl_seconds or service.settings.enrollment.claim_token_ttl
    with service.transaction() as conn:
        token_id, secret, expires = registry.create_claim_token(
            conn, uses=body.uses, now=service.now(), ttl=ttl, actor=Actor(who.name, address)
        )
    return ClaimToken(id=token_id, claim_token=secret, uses=body.uses, expires_at=expires)


@router.delete(
    "/v1/claim-tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT, responses={404: {"model": Problem}}
)
def revoke_claim_token(
    token_id: Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$")],
    who: Admin,
    service: ServiceDep,
    address: AddressDep,
) -> None:
    """Withdraw a claim token (a leaked factory image): devices already enrolled keep working."""
    with service.transaction() as conn:
        registry.revoke_claim_token(conn, token_id, now=service.now(), actor=Actor(who.name, address))
