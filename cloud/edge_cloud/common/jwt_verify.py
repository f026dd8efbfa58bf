"""Verifying the access tokens the auth service issues, from its JWKS.

Shared by every cloud service: the auth service verifies its own tokens with it, and
the ingest learns the keys from ``GET /.well-known/jwks.json`` and verifies the same way,
never touching the auth database.

Only ``EdDSA`` is accepted (the auth service signs with Ed25519), so ``alg: none``,
HS256-with-the-public-key and any other algorithm confusion are refused before a
signature is even looked at; the key is chosen by ``kid`` from the JWKS only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.algorithms import OKPAlgorithm

from edge_cloud.common.errors import ScopeMissing, TokenInvalid

ALGORITHM = "EdDSA"
SCOPES = ("events:read", "devices:read", "devices:write", "admin")
"""Every scope there is.  ``admin`` includes all the others."""
LEEWAY_S = 10


@dataclass(frozen=True)
class Claims:
    """What a verified access token says."""

    subject: str
    scopes: frozenset[str]
    token_id: str
    expires_at: int
    raw: Mapping[str, Any]

    def has(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    def require(self, scope: str) -> None:
        if not self.has(scope):
            raise ScopeMissing(scope)


class JWTVerifier:
    """Verifies EdDSA tokens against a JWKS; ``update`` swaps in a fresh key set (rotation)."""

    def __init__(self, jwks: Mapping[str, Any], *, issuer: str, audience: str) -> None:
        self.issuer = issuer
        self.audience = audience
        self._keys: dict[str, Any] = {}
        self.update(jwks)

    def update(self, jwks: Mapping[str, Any]) -> None:
        """Use the Ed25519 keys of ``jwks``.  A key set that is not one raises
        :class:`TokenInvalid` and the keys in use stay; a malformed entry is skipped."""
        entries = jwks.get("keys") if isinstance(jwks, Mapping) else None
        if not isinstance(entries, list):
            raise TokenInvalid('the JWKS is not a JSON object with a "keys" list')
        keys: dict[str, Any] = {}
        for jwk in entries:
            if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
                continue
            if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
                try:
                    keys[jwk["kid"]] = OKPAlgorithm.from_jwk(json.dumps(jwk))
                except (jwt.PyJWTError, ValueError, TypeError):
                    continue  # one unusable key must not take the good ones down
        self._keys = keys

    @property
    def known_kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def verify(self, token: str, *, scope: str | None = None) -> Claims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenInvalid(f"not a JWT: {exc}") from exc
        if header.get("alg") != ALGORITHM:
            raise TokenInvalid(f"algorithm {header.get('alg')!r} is not accepted (only {ALGORITHM})")
        key = self._keys.get(str(header.get("kid")))
        if key is None:
            raise TokenInvalid(f"unknown key id {header.get('kid')!r}")
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
            )
        except jwt.PyJWTError as exc:
            raise TokenInvalid(f"token refused: {exc}") from exc
        scopes = payload.get("scope", "")
        if not isinstance(scopes, str):
            raise TokenInvalid("the scope claim must be a space-separated string")
        claims = Claims(
            subject=str(payload["sub"]),
            scopes=frozenset(scopes.split()),
            token_id=str(payload["jti"]),
            expires_at=int(payload["exp"]),
            raw=payload,
        )
        if scope is not None:
            claims.require(scope)
        return claims
