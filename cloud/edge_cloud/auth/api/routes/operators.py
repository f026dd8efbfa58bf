"""Operators (admin): list, create, disable, enable, delete, set a password; and any
operator changing its own password (``/v1/me/password``, with the old one).

Disabling, deleting and a new password end the operator's sessions and (disable, delete)
its API keys; its access tokens are refused from the next request on (see
``edge_cloud.auth.subjects``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, status

from edge_cloud.auth import operator_admin, operators
from edge_cloud.auth.api.deps import AddressDep, Admin, Caller, ServiceDep
from edge_cloud.auth.api.schemas import Operator, OperatorCreate, PasswordChange, PasswordSet, Problem
from edge_cloud.auth.errors import Forbidden
from edge_cloud.auth.operators import USERNAME_PATTERN
from edge_cloud.auth.service import AuthService

router = APIRouter(
    tags=["operators"], responses={401: {"model": Problem}, 403: {"model": Problem}, 422: {"model": Problem}}
)

UsernamePath = Annotated[str, Path(pattern=USERNAME_PATTERN)]
_changes: dict[int | str, dict[str, Any]] = {404: {"model": Problem}, 409: {"model": Problem}}


def _model(row: Any) -> Operator:
    return Operator.model_validate({**row._mapping, "scopes": row.scopes.split()})  # the rest is ignored


def _current(service: AuthService, username: str) -> Operator:
    service.subjects.forget()  # the change counts from the next request, not after the cache's TTL
    with service.engine.connect() as conn:
        return _model(operator_admin.get(conn, username))


@router.get("/v1/operators", response_model=list[Operator])
def list_operators(_who: Admin, service: ServiceDep) -> list[Operator]:
    with service.engine.connect() as conn:
        return [_model(r) for r in operator_admin.list_operators(conn)]


@router.post(
    "/v1/operators",
    status_code=status.HTTP_201_CREATED,
    response_model=Operator,
    responses={409: {"model": Problem}},
)
def create_operator(body: OperatorCreate, who: Admin, service: ServiceDep) -> Operator:
    with service.transaction() as conn:
        operators.create_operator(
            conn,
            username=body.username,
            password=body.password,
            scopes=list(body.scopes),
            now=service.now(),
            actor=who.name,
        )
    return _current(service, body.username)


@router.post("/v1/operators/{username}/disable", response_model=Operator, responses=_changes)
def disable_operator(
    username: UsernamePath, who: Admin, service: ServiceDep, address: AddressDep
) -> Operator:
    """Refuse its logins and tokens; revoke its refresh tokens and the API keys it issued."""
    with service.transaction() as conn:
        operator_admin.set_disabled(conn, username, True, now=service.now(), actor=who.name, address=address)
    return _current(service, username)


@router.post("/v1/operators/{username}/enable", response_model=Operator, responses=_changes)
def enable_operator(username: UsernamePath, who: Admin, service: ServiceDep, address: AddressDep) -> Operator:
    """It may log in again (its revoked tokens and keys stay revoked)."""
    with service.transaction() as conn:
        operator_admin.set_disabled(conn, username, False, now=service.now(), actor=who.name, address=address)
    return _current(service, username)


@router.delete("/v1/operators/{username}", status_code=status.HTTP_204_NO_CONTENT, responses=_changes)
def delete_operator(username: UsernamePath, who: Admin, service: ServiceDep, address: AddressDep) -> None:
    """Remove it, its sessions and the API keys it issued (the audit log keeps its name)."""
    with service.transaction() as conn:
        operator_admin.delete(conn, username, now=service.now(), actor=who.name, address=address)
    service.subjects.forget()


@router.put(
    "/v1/operators/{username}/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"model": Problem}},
)
def set_password(
    username: UsernamePath, body: PasswordSet, who: Admin, service: ServiceDep, address: AddressDep
) -> None:
    """A new password (a forgotten one); the operator's sessions end."""
    with service.transaction() as conn:
        operator_admin.set_password(
            conn, username, body.password, now=service.now(), actor=who.name, address=address
        )
    service.subjects.forget()


@router.post(
    "/v1/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={429: {"model": Problem}},
)
def change_own_password(body: PasswordChange, who: Caller, service: ServiceDep, address: AddressDep) -> None:
    """The caller's own password, given the old one (a wrong one counts as a failed login).
    Every session ends, this one included: log in again with the new password."""
    if not who.is_operator:
        raise Forbidden("an API key has no password")
    try:
        with service.limiter.attempt(address, Forbidden, account=who.name), service.transaction() as conn:
            operator_admin.set_password(
                conn,
                who.name,
                body.new_password,
                now=service.now(),
                actor=who.name,
                address=address,
                old_password=body.old_password,
            )
    except Forbidden as exc:  # a wrong old password: a failed login, audited as one
        service.refusals.record("login.failed", actor=who.name, address=address, reason=str(exc))
        raise
    service.subjects.forget()
