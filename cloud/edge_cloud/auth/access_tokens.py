"""Issuing access tokens: short-lived EdDSA JWTs with iss, sub, aud, iat, exp, jti, scope."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import jwt

from edge_cloud.auth.signing_keys import KeyRing
from edge_cloud.common.jwt_verify import ALGORITHM, SCOPES


def normalise_scopes(requested: Iterable[str], allowed: Iterable[str]) -> list[str]:
    """The requested scopes that ``allowed`` grants (``admin`` grants all), in canonical order."""
    allowed_set = set(allowed)
    granted = set(SCOPES) if "admin" in allowed_set else allowed_set
    return [s for s in SCOPES if s in set(requested) and s in granted]


def issue(
    keys: KeyRing, *, issuer: str, audience: str, subject: str, scopes: Iterable[str], now: float, ttl: float
) -> tuple[str, int]:
    """The token and its ``exp``."""
    key = keys.current
    exp = int(now + ttl)
    payload = {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "iat": int(now),
        "nbf": int(now),
        "exp": exp,
        "jti": str(uuid.uuid4()),
        "scope": " ".join(scopes),
    }
    return jwt.encode(payload, key.private, algorithm=ALGORITHM, headers={"kid": key.kid}), exp
