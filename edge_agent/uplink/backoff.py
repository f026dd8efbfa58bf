"""Exponential backoff with full jitter, as a tenacity wait strategy.

The n-th retry waits ``uniform(minimum, min(maximum, minimum * 2**n))`` seconds: the window
doubles from ``[min, 2·min]`` up to ``[min, max]``, and where in the window is random, so a
fleet of devices that lost a broker at the same instant does not come back at the same
instant either (AWS's "full jitter", with ``reconnect_min`` as a floor so no device spins).
The first attempt after a lost connection waits ``uniform(0, minimum)``, for the same reason.
The random source is injected, so tests can pin it.
"""

from __future__ import annotations

import random

from tenacity import RetryCallState
from tenacity.wait import wait_base


class FullJitter(wait_base):
    def __init__(self, minimum: float, maximum: float, rng: random.Random | None = None) -> None:
        if minimum <= 0 or maximum < minimum:
            raise ValueError(f"need 0 < minimum <= maximum, got {minimum}, {maximum}")
        self.minimum = minimum
        self.maximum = maximum
        self._rng = rng or random.Random()

    def window(self, attempt: int) -> float:
        """Upper bound of the wait before retry number ``attempt`` (1-based)."""
        if attempt >= 64:  # 2**64 · min exceeds any sane maximum; avoid huge floats
            return self.maximum
        return min(self.maximum, self.minimum * 2.0**attempt)

    def first_delay(self) -> float:
        """Before the first attempt after a lost connection: ``uniform(0, minimum)``."""
        return self._rng.uniform(0.0, self.minimum)

    def delay(self, attempt: int) -> float:
        return self._rng.uniform(self.minimum, self.window(attempt))

    def __call__(self, retry_state: RetryCallState) -> float:
        return self.delay(retry_state.attempt_number)
