"""The ingest API behind a real auth service: its tokens, verified through its served JWKS.

``ingest_behind_auth`` serves the auth service on a free port (``tests.cloud.served``) and
builds the ingest app with :class:`~edge_cloud.common.jwks_client.RemoteJWKS` on its
``/.well-known/jwks.json``, as ``edge-ingest serve`` does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from sqlalchemy.engine import Engine

from edge_cloud.auth import access_tokens
from edge_cloud.auth.service import AuthService
from edge_cloud.common.jwks_client import RemoteJWKS
from edge_cloud.ingest.api.app import create_app
from edge_cloud.ingest.api.state import ApiState
from tests.cloud.helpers import ManualClock
from tests.cloud.ingest_write.helpers import ingest_settings
from tests.cloud.served import Recorder, serve

PATH_VALUES = {"device_id": "site-1", "name": "ping"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@dataclass
class AuthTokens:
    """Tokens the way the auth service issues them, and the attacks on them."""

    service: AuthService
    url: str
    recorder: Recorder
    jwks_clock: ManualClock
    """The ingest's clock for refetching keys (at most one fetch per minute for unknown kids)."""

    def token(self, *scopes: str, ttl: float = 300, age: float = 0) -> str:
        t = self.service.settings.tokens
        token, _exp = access_tokens.issue(
            self.service.keys,
            issuer=t.issuer,
            audience=t.audience,
            subject="operator-1",
            scopes=list(scopes),
            now=self.service.now() - age,
            ttl=ttl,
        )
        return token

    def claims(self, *scopes: str) -> dict[str, Any]:
        return dict(jwt.decode(self.token(*scopes), options={"verify_signature": False}))

    def kid(self) -> str:
        return str(jwt.get_unverified_header(self.token("admin"))["kid"])

    def wrong_signature(self, *scopes: str) -> str:
        """Signed by a key that is not the auth service's, under the auth service's kid."""
        return jwt.encode(
            self.claims(*scopes), Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": self.kid()}
        )

    def alg_none(self, *scopes: str) -> str:
        header = {"alg": "none", "typ": "JWT", "kid": self.kid()}
        return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(self.claims(*scopes)).encode())}."

    def hs256_with_the_public_key(self, *scopes: str) -> str:
        """Algorithm confusion: HMAC keyed with the public JWK's bytes, which anyone can fetch."""
        jwk = next(k for k in self.service.keys.jwks()["keys"] if k["kid"] == self.kid())
        header = {"alg": "HS256", "typ": "JWT", "kid": self.kid()}
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(self.claims(*scopes)).encode())}"
        key = base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4))
        return f"{signing_input}.{b64(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())}"

    def jwks_fetches(self) -> int:
        return sum(1 for r in self.recorder.requests if r.path == "/.well-known/jwks.json")


@contextmanager
def ingest_behind_auth(
    service: AuthService, engine: Engine, tmp_path: Path, **state: Any
) -> Iterator[tuple[FastAPI, AuthTokens]]:
    t = service.settings.tokens
    jwks_clock = ManualClock()
    with serve(service) as (url, recorder):
        verifier = RemoteJWKS(
            f"{url}/.well-known/jwks.json", issuer=t.issuer, audience=t.audience, clock=jwks_clock
        )
        jwks = {"jwks_url": f"{url}/.well-known/jwks.json", "issuer": t.issuer, "audience": t.audience}
        settings = ingest_settings(tmp_path, str(engine.url), auth=jwks)  # the dashboard logs in there
        app = create_app(ApiState(settings=settings, engine=engine, token_verifier=verifier, **state))
        yield app, AuthTokens(service, url, recorder, jwks_clock)


def secured_operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    """``(method, concrete path, operation)`` of every operation the OpenAPI spec says needs a token."""
    found = []
    for path, item in app.openapi()["paths"].items():
        for method, operation in item.items():
            if operation.get("security"):
                concrete = path
                for name, value in PATH_VALUES.items():
                    concrete = concrete.replace("{" + name + "}", value)
                found.append((method.upper(), concrete, operation))
    return found


def required_query(operation: dict[str, Any]) -> dict[str, str]:
    """Valid values for the required query parameters (so only the token decides the answer)."""
    return {
        p["name"]: PATH_VALUES.get(p["name"], "x")
        for p in operation.get("parameters", [])
        if p["in"] == "query" and p.get("required")
    }
