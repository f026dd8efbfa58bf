"""The dashboard's login: an operator's password goes to the auth service's ``/v1/token``
(password grant); the access token it answers lives in an HttpOnly, SameSite=Strict
cookie, never in a URL nor within reach of the page's scripts.  Every page verifies it
with the API's own verifier (the auth service's JWKS), scope by scope."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

from fastapi import Request

from edge_cloud.common.errors import TokenInvalid
from edge_cloud.common.jwt_verify import Claims
from edge_cloud.ingest.api.state import ApiState
from edge_cloud.ingest.errors import LoginFailed

COOKIE = "edge_dashboard_token"
LOGIN_TIMEOUT_S = 10.0


def login(token_url: str, username: str, password: str) -> tuple[str, int]:
    """The access token and its lifetime in seconds, for the operator's scopes."""
    body = urllib.parse.urlencode({"grant_type": "password", "username": username, "password": password})
    request = urllib.request.Request(
        token_url, data=body.encode(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    try:
        with urllib.request.urlopen(request, timeout=LOGIN_TIMEOUT_S) as answer:
            granted = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        detail = _detail(exc) or f"the auth service answered {exc.code}"
        # A refused password is the operator's to fix; an auth service failing is not.
        status = exc.code if exc.code in (401, 429) else 401 if exc.code < 500 else 503
        raise LoginFailed(detail, status) from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise LoginFailed(f"the auth service at {token_url} did not answer: {exc}", 503) from exc
    return str(granted["access_token"]), int(granted.get("expires_in", 900))


def _detail(exc: urllib.error.HTTPError) -> str | None:
    try:
        detail = json.loads(exc.read()).get("detail")
    except (ValueError, OSError, AttributeError):
        return None
    return detail if isinstance(detail, str) else None


def claims(request: Request, state: ApiState, scope: str) -> Claims | None:
    """The verified claims of the session's token, which must carry ``scope``; None when
    there is no session, it expired, or it lacks the scope (the page asks to log in)."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    try:
        found: Claims = state.token_verifier.verify(token, scope=scope)
    except TokenInvalid:  # ScopeMissing is one too
        return None
    return found


def same_origin(request: Request) -> bool:
    """A form post from the dashboard's own pages (with SameSite=Strict, a second guard
    against a cross-site post riding on the cookie)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser's cross-site form post (they always send Origin)
    return origin == f"{request.url.scheme}://{request.url.netloc}"
