"""Is the subject of a valid access token still allowed in?

A signature and an expiry say a token was issued, not that its holder may still act.  On
every authenticated request this service also checks the token's subject:

- an operator (``sub`` = user name): exists, is not disabled, the token was issued (``iat``)
  no earlier than its ``tokens_after`` (set when it was created, disabled or given a new
  password), and carries no scope the operator no longer has;
- an API key (``sub`` = ``api-key:<id>``, from ``client_credentials``): not revoked or expired.

The answer is cached per subject for ``tokens.subject_check_ttl`` seconds (default 5), so a
burst of requests costs one lookup; a change made through this process's API drops the
cache at once, one made elsewhere (the CLI, another process) takes effect within the TTL.
The other services (the ingest) verify tokens from the JWKS alone and cannot make this
check: there, a token stays good until it expires (``tokens.access_ttl``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from edge_cloud.auth.api_keys import principal_name
from edge_cloud.auth.errors import NotAuthenticated
from edge_cloud.auth.tables import api_keys, operators
from edge_cloud.common.jwt_verify import SCOPES, Claims

_KEY_PREFIX = principal_name("")


@dataclass(frozen=True)
class _Standing:
    scopes: frozenset[str] | None  # None: unknown, disabled, revoked or expired
    tokens_after: int
    checked_at: float


class SubjectCheck:
    def __init__(self, engine: Engine, *, ttl: float, clock: Callable[[], float]) -> None:
        self.engine = engine
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, _Standing] = {}
        self._generation = 0  # moved on by forget(): a look-up begun before must not be cached
        self._lock = threading.Lock()

    def check(self, claims: Claims) -> None:
        """Raise :class:`NotAuthenticated` unless the token's subject may still use it."""
        standing = self._standing(claims.subject)
        if standing.scopes is None:
            raise NotAuthenticated(f"{claims.subject!r} is disabled, deleted, revoked or expired")
        if int(claims.raw["iat"]) < standing.tokens_after:
            raise NotAuthenticated("this token predates a password change or a disabling; log in again")
        granted = set(SCOPES) if "admin" in standing.scopes else standing.scopes
        if not claims.scopes <= granted:
            raise NotAuthenticated("this token carries scopes its holder no longer has; log in again")

    def forget(self) -> None:
        """Drop every cached answer (after a change to operators or keys)."""
        with self._lock:
            self._cache.clear()
            self._generation += 1

    def _standing(self, subject: str) -> _Standing:
        now = self.clock()
        with self._lock:
            cached = self._cache.get(subject)
            generation = self._generation
        if cached is not None and 0 <= now - cached.checked_at < self.ttl:
            return cached
        standing = self._look_up(subject, now)
        with self._lock:
            if generation == self._generation:
                self._cache[subject] = standing
        return standing

    def _look_up(self, subject: str, now: float) -> _Standing:
        with self.engine.connect() as conn:
            if subject.startswith(_KEY_PREFIX):
                key = conn.execute(
                    sa.select(api_keys).where(api_keys.c.id == subject.removeprefix(_KEY_PREFIX))
                ).first()
                expired = key is not None and key.expires_at is not None and key.expires_at <= now
                if key is None or key.revoked_at is not None or expired:
                    return _Standing(None, 0, now)
                return _Standing(frozenset(key.scopes.split()), 0, now)
            op = conn.execute(sa.select(operators).where(operators.c.username == subject)).first()
        if op is None or op.disabled:
            return _Standing(None, 0, now)
        return _Standing(frozenset(op.scopes.split()), op.tokens_after, now)
