"""Failed-attempt limits per account and per client address (sliding window, in memory).

Two ways in, by what a check costs:

- :meth:`FailureLimiter.attempt`, for passwords (argon2, deliberately slow): the attempt
  takes its place in both windows *before* the password is checked, or is refused (429).
  A failure keeps the place; a success gives it back.  So however many requests arrive
  at once, at most ``per_account`` passwords are checked for one account per window, and
  at most ``per_address`` from one address.  (Checking first and counting after, 40
  simultaneous logins all passed the check before the first failure was counted.)
- :meth:`FailureLimiter.guard`, for 256-bit secrets and signatures (a hash and a lookup):
  refuse while over the limit, count a failure after.  Nothing is to be gained by racing
  it, and a batch of devices enrolling at once from one address must not be refused.

A successful login forgets the account's failures, not the address's (an attacker with
one good account must not launder guesses at others).  The limits live in the process:
one ``edge-auth serve`` per database, or a proxy in front, is the supported deployment.
"""

from __future__ import annotations

import ipaddress
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from edge_cloud.auth.errors import RateLimited

MAX_KEYS = 100_000
IPV6_PREFIX = 64
"""An IPv6 client is limited by its /64: one subscriber, LAN or host gets a whole /64 and
can pick any of its 2**64 addresses, so a limit per address would be none."""


def address_key(address: str) -> str:
    """What one client's failures are counted under: the address itself (IPv4, or anything
    that is not an IP address), an IPv4-mapped IPv6 address as its IPv4, an IPv6 one as its /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_PREFIX), strict=False))
    return str(ip)


@dataclass(eq=False)  # compared by identity: a deque removes exactly this one
class _Slot:
    at: float
    running: bool  # held by an attempt still being checked


class FailureLimiter:
    def __init__(
        self, *, per_account: int, per_address: int, window: float, clock: Callable[[], float]
    ) -> None:
        self.per_account = per_account
        self.per_address = per_address
        self.window = window
        self.clock = clock
        self._slots: dict[str, deque[_Slot]] = {}
        self._lock = threading.Lock()

    def check(self, account: str | None, address: str) -> None:
        """Raise :class:`RateLimited` if either key is over its limit."""
        with self._lock:
            self._refuse_if_full(self._keys(account, address), self.clock())

    def failed(self, account: str | None, address: str) -> None:
        now = self.clock()
        with self._lock:
            for key, _limit in self._keys(account, address):
                self._recent(key, now).append(_Slot(now, running=False))

    @contextmanager
    def guard(self, address: str, *counted: type[Exception], account: str | None = None) -> Iterator[None]:
        """Refuse while over the limit; count a failure when the body raises one of ``counted``."""
        self.check(account, address)
        try:
            yield
        except counted:
            self.failed(account, address)
            raise

    @contextmanager
    def attempt(self, address: str, *counted: type[Exception], account: str | None = None) -> Iterator[None]:
        """Count the attempt now, or refuse it; it stays counted if the body raises one of
        ``counted``, is given back otherwise, and on success the account's failures go too."""
        keys = self._keys(account, address)
        slot = _Slot(self.clock(), running=True)
        with self._lock:
            self._refuse_if_full(keys, slot.at)
            for key, _limit in keys:
                self._recent(key, slot.at).append(slot)
        try:
            yield
        except counted:
            with self._lock:
                slot.running = False
            raise
        except BaseException:
            self._give_back(keys, slot, succeeded=False)
            raise
        self._give_back(keys, slot, succeeded=True)

    def _give_back(self, keys: list[tuple[str, int]], slot: _Slot, *, succeeded: bool) -> None:
        with self._lock:
            for key, _limit in keys:
                slots = self._slots.get(key, deque())
                if slot in slots:  # gone only if it outlived the window
                    slots.remove(slot)
                if succeeded and key.startswith("account:"):
                    # The owner got in: forget the failures, not the attempts still running.
                    running = [s for s in slots if s.running]
                    slots.clear()
                    slots.extend(running)

    def _refuse_if_full(self, keys: list[tuple[str, int]], now: float) -> None:
        for key, limit in keys:
            slots = self._recent(key, now)
            if len(slots) >= limit:
                retry = max(1, int(slots[0].at + self.window - now) + 1)
                raise RateLimited(f"too many failed logins; retry in {retry} s", retry)

    def _keys(self, account: str | None, address: str) -> list[tuple[str, int]]:
        keys = [(f"address:{address_key(address)}", self.per_address)]
        if account:
            keys.append((f"account:{account.lower()}", self.per_account))
        return keys

    def _recent(self, key: str, now: float) -> deque[_Slot]:
        if key not in self._slots and len(self._slots) >= MAX_KEYS:
            # Bound memory under a spray of addresses.  Before making the new key, not
            # after: a key dropped as empty right after it was made would count nothing.
            for other in list(self._slots):
                if not self._prune(self._slots[other], now):
                    del self._slots[other]
        return self._prune(self._slots.setdefault(key, deque()), now)

    def _prune(self, slots: deque[_Slot], now: float) -> deque[_Slot]:
        while slots and slots[0].at <= now - self.window:
            slots.popleft()
        return slots
