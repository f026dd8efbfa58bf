"""Verifying access tokens in a service other than auth: the keys come from the auth
service's ``/.well-known/jwks.json`` (never its database).

The key set is fetched at first use and again when a token names a ``kid`` not seen yet
(a key rotation), at most once per ``min_refresh`` seconds so a stream of forged kids
cannot turn into a stream of fetches.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import jwt

from edge_cloud.common.errors import TokenInvalid
from edge_cloud.common.jwt_verify import Claims, JWTVerifier


def fetch_json(url: str, timeout: float = 10.0) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data: dict[str, Any] = json.loads(response.read())
            return data
    except (urllib.error.URLError, TimeoutError, ValueError) as exc:
        raise TokenInvalid(f"cannot fetch the signing keys from {url}: {exc}") from exc


class RemoteJWKS:
    def __init__(
        self,
        url: str,
        *,
        issuer: str,
        audience: str,
        min_refresh: float = 60.0,
        fetch: Callable[[str], dict[str, Any]] = fetch_json,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.min_refresh = min_refresh
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._fetched_at: float | None = None
        self._verifier = JWTVerifier({"keys": []}, issuer=issuer, audience=audience)

    def verify(self, token: str, *, scope: str | None = None) -> Claims:
        if self._fetched_at is None:
            self._refresh(force=True)
        try:
            return self._verifier.verify(token, scope=scope)
        except TokenInvalid:
            kid = _kid(token)
            if kid is None or kid in self._verifier.known_kids or not self._refresh(force=False):
                raise
            return self._verifier.verify(token, scope=scope)

    def _refresh(self, *, force: bool) -> bool:
        with self._lock:
            now = self._clock()
            if not force and self._fetched_at is not None and now - self._fetched_at < self.min_refresh:
                return False
            self._fetched_at = now
            self._verifier.update(self._fetch(self.url))
            return True


def _kid(token: str) -> str | None:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        return None
    return str(kid) if kid is not None else None
