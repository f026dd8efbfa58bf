"""``edge-ingest serve`` stopped by SIGTERM at any moment of its start, as a service manager
(or an operator's quick restart) does: it stops, cleanly and at once, never serving on
as if the signal had not come."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cloud.ingest_write.processes import IngestProcess, ingest_config
from tests.mosquitto import Mosquitto


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_sigterm_right_after_the_consumer_connects_stops_serve(
    tmp_path: Path, database_url: str, broker: Mosquitto
) -> None:
    """The signal lands while the HTTP app is still being built, before uvicorn took the
    signals over: it was noted by a handler nobody listened to, and serve ran on."""
    config = ingest_config(tmp_path / "ingest", database_url, broker)
    ingest = IngestProcess(config, tmp_path / "ingest.log")
    for _ in range(3):
        ingest.start()  # returns as soon as "connected to" is in the log
        assert ingest.stop(timeout=20) == 0, ingest.log[-2000:]
    assert ingest.log.count("stopped") >= 3
