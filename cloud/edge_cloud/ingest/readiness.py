"""The write side's readiness checks, as plain callables (``/readyz`` calls them).

``database_reachable(engine)`` answers whether a ``SELECT 1`` succeeds within
``TIMEOUT_S``; ``Consumer.broker_connected`` whether the consumer is connected and
subscribed.  Neither raises: a check that cannot tell says False.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

TIMEOUT_S = 2.0
Check = Callable[[], bool]


class _Probe:
    """One ``SELECT 1`` in a daemon thread, its answer awaited for ``timeout``."""

    def __init__(self, engine: Engine) -> None:
        self.done = threading.Event()
        self.ok = False
        self._engine = engine
        self.thread = threading.Thread(target=self._run, name="ingest-ready-db", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            with self._engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            self.ok = True
        except Exception as exc:  # any failure means "not ready"; say which in the log
            log.debug("database not reachable: %s", exc)
        finally:
            self.done.set()


def database_reachable(engine: Engine, timeout: float = TIMEOUT_S) -> Check:
    """A check that the database answers, bounded in time: a hung connection attempt must
    not hang the readiness probe.  While one attempt hangs, later checks wait on that one
    instead of starting more (a probe every few seconds through an hour-long hang would
    otherwise pile up hundreds of connection attempts), and its thread is a daemon, so a
    hung database never holds up the process's exit."""
    lock = threading.Lock()
    current: list[_Probe] = []

    def check() -> bool:
        with lock:
            if not current or current[0].done.is_set():
                current[:] = [_Probe(engine)]
            probe = current[0]
        return probe.done.wait(timeout) and probe.ok

    return check
