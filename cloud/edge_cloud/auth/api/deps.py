"""Dependencies of the routes: the service, the caller's address, the caller's identity."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from edge_cloud.auth import api_keys, opaque
from edge_cloud.auth.errors import NotAuthenticated
from edge_cloud.auth.service import AuthService
from edge_cloud.common.errors import ScopeMissing, TokenInvalid


def get_service(request: Request) -> AuthService:
    service: AuthService = request.app.state.service
    return service


ServiceDep = Annotated[AuthService, Depends(get_service)]


def client_address(request: Request, service: ServiceDep) -> str:
    """The peer, or the last X-Forwarded-For hop if the peer is a trusted proxy."""
    peer = request.client.host if request.client else "unknown"
    if peer in service.settings.server.trusted_proxies:
        forwarded = request.headers.get("x-forwarded-for", "")
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        if hops:
            return hops[-1][:64]
    return peer


AddressDep = Annotated[str, Depends(client_address)]

_bearer = HTTPBearer(auto_error=False, description="An access token (JWT) or an API key (eak_…)")


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[str]

    def has(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    @property
    def is_operator(self) -> bool:
        return not self.name.startswith(api_keys.principal_name(""))


def principal(
    service: ServiceDep,
    address: AddressDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise NotAuthenticated("send Authorization: Bearer <access token or API key>")
    token = credentials.credentials
    if token.startswith(opaque.API_KEY):
        key = service.api_key(token, address)
        return Principal(api_keys.principal_name(key.id), frozenset(key.scopes))
    try:
        claims = service.verifier.verify(token)
    except TokenInvalid as exc:
        raise NotAuthenticated(str(exc)) from exc
    service.subjects.check(claims)  # a disabled operator's or a revoked key's token stops here
    return Principal(claims.subject, claims.scopes)


def require(scope: str) -> Callable[..., Principal]:
    def dependency(
        who: Annotated[Principal, Depends(principal)],
        request: Request,
        service: ServiceDep,
        address: AddressDep,
    ) -> Principal:
        if not who.has(scope):
            exc = ScopeMissing(scope)
            service.refusals.record(
                "access.denied", actor=who.name, address=address, reason=str(exc),
                target=f"{request.method} {request.url.path}",
            )  # fmt: skip
            raise exc
        return who

    return dependency


Admin = Annotated[Principal, Depends(require("admin"))]
DevicesRead = Annotated[Principal, Depends(require("devices:read"))]
DevicesWrite = Annotated[Principal, Depends(require("devices:write"))]
Caller = Annotated[Principal, Depends(principal)]
"""Anyone with a valid token or key, whatever its scopes."""
