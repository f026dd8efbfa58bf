"""``/readyz``'s database check against a database that hangs: a listening socket that
never answers, where psycopg waits for the server's first bytes."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from edge_cloud.ingest.readiness import database_reachable


@pytest.fixture
def silent_port() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)  # connections complete in the backlog; nothing ever answers them
        yield server.getsockname()[1]


def probes() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "ingest-ready-db"]


def test_a_hung_database_is_not_ready_and_checks_do_not_pile_up(silent_port: int) -> None:
    engine = sa.create_engine(f"postgresql+psycopg://nobody@127.0.0.1:{silent_port}/none")
    check = database_reachable(engine, timeout=0.1)
    try:
        assert [check() for _ in range(5)] == [False] * 5
        hung = probes()
        assert len(hung) == 1 and hung[0].daemon, "one attempt at a time, never holding up exit"
    finally:
        engine.dispose()


def test_a_reachable_database_is_ready_again_and_again(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    check = database_reachable(engine)
    try:
        assert [check() for _ in range(3)] == [True] * 3
    finally:
        engine.dispose()


def test_a_process_exits_while_its_check_hangs(silent_port: int) -> None:
    script = (
        "import sqlalchemy as sa\n"
        "from edge_cloud.ingest.readiness import database_reachable\n"
        f"check = database_reachable(sa.create_engine('postgresql+psycopg://nobody@127.0.0.1:{silent_port}/x'), 0.1)\n"
        "assert check() is False\n"
    )
    done = subprocess.run([sys.executable, "-c", script], timeout=30, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
