"""``POST /v1/token``: OAuth2 password, refresh_token and client_credentials (API key) grants."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form

from edge_cloud.auth import access_tokens, api_keys, audit, operators
from edge_cloud.auth.api.deps import AddressDep, ServiceDep
from edge_cloud.auth.api.schemas import Problem, TokenResponse
from edge_cloud.auth.errors import BadRequest, NotAuthenticated
from edge_cloud.auth.service import AuthService
from edge_cloud.common.jwt_verify import SCOPES

router = APIRouter(tags=["tokens"])

Field256 = Annotated[str | None, Form(max_length=256)]


@router.post(
    "/v1/token",
    response_model=TokenResponse,
    responses={401: {"model": Problem}, 422: {"model": Problem}, 429: {"model": Problem}},
    summary="Get an access token",
)
def token(
    service: ServiceDep,
    address: AddressDep,
    grant_type: Annotated[Literal["password", "refresh_token", "client_credentials"], Form()],
    username: Field256 = None,
    password: Field256 = None,
    scope: Annotated[str, Form(max_length=256)] = "",
    refresh_token: Field256 = None,
    client_secret: Field256 = None,
) -> TokenResponse:
    """``password``: an operator's user name and password (scope: the scopes wanted, space
    separated; default all the operator has).  ``refresh_token``: spend a refresh token for
    a new pair.  ``client_credentials``: an API key as ``client_secret``.  Failed attempts
    are limited per account and per client address (429 with Retry-After)."""
    requested = scope.split() or list(SCOPES)
    unknown = set(requested) - set(SCOPES)
    if unknown:
        raise BadRequest(f"unknown scopes {sorted(unknown)}; known: {', '.join(SCOPES)}")
    if grant_type == "password":
        return _password_grant(service, address, username, password, requested)
    if grant_type == "refresh_token":
        if not refresh_token:
            raise BadRequest("refresh_token is required for grant_type=refresh_token")
        now = service.now()
        with service.limiter.guard(address, NotAuthenticated):
            with service.transaction() as conn:
                rotated = operators.rotate_refresh_token(
                    conn, refresh_token, now=now, ttl=service.settings.tokens.refresh_ttl, address=address
                )
            if rotated is None:
                raise NotAuthenticated(
                    "refresh token already used; every token of this session is revoked, log in again"
                )
        op, scopes, new_refresh = rotated
        return _access(service, op.username, scopes, new_refresh)
    if not client_secret:
        raise BadRequest("client_secret (the API key) is required for grant_type=client_credentials")
    key = service.api_key(client_secret, address)
    scopes = access_tokens.normalise_scopes(requested, key.scopes)
    return _access(service, api_keys.principal_name(key.id), scopes, None)


def _password_grant(
    service: AuthService, address: str, username: str | None, password: str | None, requested: list[str]
) -> TokenResponse:
    if not username or password is None:
        raise BadRequest("username and password are required for grant_type=password")
    # A name no operator can have is a failed login like any other (counted against the
    # address), and goes neither to argon2 nor to the database, which may refuse it (a
    # NUL, or longer than the column, on PostgreSQL) and turn the failure into an uncounted 422.
    account = username if operators.valid_username(username) else None
    with service.limiter.attempt(address, NotAuthenticated, account=account):
        now = service.now()
        with service.transaction() as conn:
            op = operators.authenticate(conn, username, password) if account else None
            if op is not None:
                scopes = access_tokens.normalise_scopes(requested, op.scopes)
                refresh = operators.issue_refresh_token(
                    conn, op, scopes, now=now, ttl=service.settings.tokens.refresh_ttl
                )
                audit.record(
                    conn, at=now, actor=op.username, address=address, action="login.succeeded", scopes=scopes
                )
        if op is None:
            who = {"actor": username} if account else {"actor": "?", "username": username[:64]}
            service.refusals.record(
                "login.failed", address=address, reason="wrong user name or password", **who
            )
            raise NotAuthenticated("wrong user name or password")
    return _access(service, op.username, scopes, refresh)


def _access(service: AuthService, subject: str, scopes: list[str], refresh: str | None) -> TokenResponse:
    if not scopes:
        raise NotAuthenticated("none of the requested scopes is granted to this account")
    t = service.settings.tokens
    now = service.now()
    jwt, exp = access_tokens.issue(
        service.keys,
        issuer=t.issuer,
        audience=t.audience,
        subject=subject,
        scopes=scopes,
        now=now,
        ttl=t.access_ttl,
    )
    return TokenResponse(
        access_token=jwt, expires_in=exp - int(now), scope=" ".join(scopes), refresh_token=refresh
    )
