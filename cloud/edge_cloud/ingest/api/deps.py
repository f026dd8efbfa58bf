"""Dependencies of the routes: the state, and the caller's token with the scope a route needs.

Tokens are the auth service's access tokens, verified here against its JWKS
(``edge_cloud.common.jwks_client.RemoteJWKS``: cached, refetched on an unknown ``kid``, so
the ingest keeps answering while the auth service is down and picks up a rotation).
Scopes: ``events:read`` for what devices measured (readings, test results, alarms, gaps),
``devices:read`` for the fleet and the quarantine, ``devices:write`` for commands and
imports; ``admin`` holds them all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from edge_cloud.common.errors import ScopeMissing, TokenInvalid
from edge_cloud.common.jwt_verify import Claims
from edge_cloud.ingest.api.state import ApiState


class Problem(BaseModel):
    """An error answer: what was wrong, in one line."""

    detail: str


PROBLEM = {"model": Problem}
SECURED_RESPONSES: dict[int | str, dict[str, Any]] = {401: PROBLEM, 403: PROBLEM, 503: PROBLEM}
"""What any route behind a token may answer besides its own: no or a bad token, a missing
scope, the database (or the key set) unavailable."""

_bearer = HTTPBearer(auto_error=False, description="An access token (JWT) from the auth service")


def get_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


State = Annotated[ApiState, Depends(get_state)]


def require(scope: str) -> Callable[..., Claims]:
    """A dependency: the verified claims of the bearer token, which must carry ``scope``.
    401 for a missing or invalid token, 403 for a valid one without the scope."""

    def dependency(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> Claims:
        verifier = getattr(request.app.state, "token_verifier", None)
        if verifier is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "token verification is not configured")
        if credentials is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "a bearer token is required", {"WWW-Authenticate": "Bearer"}
            )
        try:
            claims: Claims = verifier.verify(credentials.credentials, scope=scope)
        except ScopeMissing as exc:
            raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from exc
        except TokenInvalid as exc:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, str(exc), {"WWW-Authenticate": "Bearer"}
            ) from exc
        return claims

    dependency.__name__ = f"require_{scope.replace(':', '_')}"
    return dependency


EventsRead = Annotated[Claims, Depends(require("events:read"))]
DevicesRead = Annotated[Claims, Depends(require("devices:read"))]
DevicesWrite = Annotated[Claims, Depends(require("devices:write"))]
