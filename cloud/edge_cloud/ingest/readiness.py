"""The write side's readiness checks, as plain callables (``/readyz`` calls them).

``database_reachable(engine)`` answers whether a ``SELECT 1`` succeeds within
``TIMEOUT_S``; ``Consumer.broker_connected`` whether the consumer is connected and
subscribed.  Neither raises: a check that cannot tell says False.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import sqlalchemy as sa
from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

TIMEOUT_S = 2.0
Check = Callable[[], bool]


def database_reachable(engine: Engine, timeout: float = TIMEOUT_S) -> Check:
    """A check that the database answers (bounded in time: a hung connection attempt must
    not hang the readiness probe)."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-ready-db")

    def select_one() -> bool:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True

    def check() -> bool:
        try:
            return pool.submit(select_one).result(timeout=timeout)
        except FutureTimeout:
            return False
        except Exception as exc:  # any failure means "not ready"; say which once in the log
            log.debug("database not reachable: %s", exc)
            return False

    return check
