"""Failed-login limits per account and per client address (sliding window, in memory).

Only failures count; a success does not reset the address's count (an attacker with one
good account must not launder guesses at others).  The limits live in the process: one
``edge-auth serve`` per database, or a proxy in front, is the supported deployment.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from edge_cloud.auth.errors import RateLimited


class FailureLimiter:
    def __init__(
        self, *, per_account: int, per_address: int, window: float, clock: Callable[[], float]
    ) -> None:
        self.per_account = per_account
        self.per_address = per_address
        self.window = window
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, account: str | None, address: str) -> None:
        """Raise :class:`RateLimited` if either key is over its limit."""
        now = self.clock()
        with self._lock:
            for key, limit in self._keys(account, address):
                times = self._recent(key, now)
                if len(times) >= limit:
                    retry = max(1, int(times[0] + self.window - now) + 1)
                    raise RateLimited(f"too many failed logins; retry in {retry} s", retry)

    def failed(self, account: str | None, address: str) -> None:
        now = self.clock()
        with self._lock:
            for key, _limit in self._keys(account, address):
                self._recent(key, now).append(now)

    @contextmanager
    def guard(self, address: str, *counted: type[Exception], account: str | None = None) -> Iterator[None]:
        """Refuse while over the limit; count a failure when the body raises one of ``counted``."""
        self.check(account, address)
        try:
            yield
        except counted:
            self.failed(account, address)
            raise

    def succeeded(self, account: str | None) -> None:
        if account is not None:
            with self._lock:
                self._failures.pop(f"account:{account.lower()}", None)

    def _keys(self, account: str | None, address: str) -> list[tuple[str, int]]:
        keys = [(f"address:{address}", self.per_address)]
        if account:
            keys.append((f"account:{account.lower()}", self.per_account))
        return keys

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(self._failures) > 100_000:  # bound memory under a spray of addresses
            for stale in [k for k, v in self._failures.items() if not v]:
                del self._failures[stale]
        return times
