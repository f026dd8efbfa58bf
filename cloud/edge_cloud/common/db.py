"""Database engines for the cloud services (SQLAlchemy 2 Core; SQLite or PostgreSQL).

A SQLite URL gets foreign keys on and WAL with a busy timeout, so the threads of one
service process do not trip over each other's writes; a PostgreSQL URL with no driver
named uses psycopg 3.  :func:`wait_for_database` retries the first connection with a
jittered backoff, because a service often starts before its database is ready.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential


def normalise_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3 (the one driver the ``cloud`` extra installs)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


# What a PostgreSQL server says when it answers and refuses the connection for a reason of
# configuration (psycopg gives no SQLSTATE for a failed connection, only the server's text):
# waiting will not fix a database that does not exist or a role that may not log in.
_REFUSED_FOR_GOOD = (
    "does not exist",  # database or role (3D000, 28000)
    "password authentication failed",  # 28P01
    "no pg_hba.conf entry",  # 28000
    "is not permitted to log in",  # 28000
)


def refused_for_good(exc: BaseException) -> bool:
    """True if the database answered and refused for a configuration reason (not worth a retry)."""
    text = str(getattr(exc, "orig", None) or exc)
    return "FATAL" in text and any(reason in text for reason in _REFUSED_FOR_GOOD)


def wait_for_database(engine: Engine, timeout: float = 30.0) -> None:
    """Connect once; retried for up to ``timeout`` seconds while the database is not reachable
    yet (a server that answers "no such database" or "wrong password" is not retried)."""
    for attempt in Retrying(
        retry=retry_if_exception(
            lambda exc: isinstance(exc, sa.exc.OperationalError) and not refused_for_good(exc)
        ),
        wait=wait_random_exponential(multiplier=0.2, max=5),
        stop=stop_after_delay(timeout),
        reraise=True,
    ):
        with attempt, engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
