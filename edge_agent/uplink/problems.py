"""Log a recurring failure once per series, not once per retry.

A broker that refuses our credentials for a week must not write 5,000 identical lines:
the first failure of a kind is logged (WARNING), retries are DEBUG, a different failure
starts a new series (logged again), and the first success after failures is logged once
(INFO) with how many attempts it took.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class ProblemSeries:
    def __init__(
        self, logger: logging.Logger, what: str, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._log = logger
        self._what = what
        self._clock = clock
        self._key: tuple[type[BaseException], str] | None = None
        self.failures = 0
        """Failures since the last success."""
        self._since: float | None = None

    @property
    def failing(self) -> bool:
        return self.failures > 0

    def failed(self, exc: BaseException, action: str = "") -> bool:
        """Record a failure; returns True when it was logged (a new series)."""
        self.failures += 1
        if self._since is None:
            self._since = self._clock()
        key = (type(exc), str(exc))
        suffix = f"; {action}" if action else ""
        if key != self._key:
            self._key = key
            self._log.warning("%s: %s%s", self._what, exc, suffix)
            return True
        self._log.debug("%s (attempt %d): %s%s", self._what, self.failures, exc, suffix)
        return False

    def recovered(self, message: str) -> None:
        if self.failures:
            elapsed = self._clock() - (self._since or self._clock())
            self._log.info(
                "%s after %d failed attempt%s over %.0f s (last: %s)",
                message,
                self.failures,
                "" if self.failures == 1 else "s",
                elapsed,
                self._key[1] if self._key else "?",
            )
        self.failures = 0
        self._key = None
        self._since = None
