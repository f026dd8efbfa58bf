"""``edge-ingest serve``: the consumer and the HTTP API in one process.

Order: wait for the database (``edge_cloud.common.db.wait_for_database``), migrate, make
the ``readings`` partitions due (PostgreSQL), start the consumer, then serve HTTP with
uvicorn until SIGTERM/SIGINT; then stop the consumer (it commits and acknowledges what
it received, publishes those acks and disconnects, leaving its session to the broker).
Partitions are maintained again every ``MAINTENANCE_S``.

The HTTP app (``edge_cloud.ingest.api.app.create_app``) is built by :func:`api_app` from
:class:`ServeParts`; tests may pass ``app_factory=None`` to run the consumer alone.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine, make_url

from edge_cloud.common.db import make_engine, normalise_url, wait_for_database
from edge_cloud.common.jwks_client import RemoteJWKS
from edge_cloud.ingest import migrate, partitions
from edge_cloud.ingest.api.app import create_app
from edge_cloud.ingest.api.state import ApiState
from edge_cloud.ingest.commands import CommandClient, commands_client_id
from edge_cloud.ingest.consumer import Consumer, IngestMetrics
from edge_cloud.ingest.errors import IngestError, StoreUnavailable
from edge_cloud.ingest.importing import Importer
from edge_cloud.ingest.readiness import Check, database_reachable
from edge_cloud.ingest.settings import IngestSettings

log = logging.getLogger(__name__)

MAINTENANCE_S = 3600.0
GC_GEN0_THRESHOLD = 100_000
"""Allocations between two young-generation collections (CPython's default is 700; 10,000
cost the consumer about 0.5–1 µs more CPU per event stored, measured end to end).  What a
collection could free is only cyclic garbage, rare here: memory is not the price."""


@dataclass(frozen=True)
class ServeParts:
    """What the write side hands the HTTP app."""

    settings: IngestSettings
    engine: Engine
    registry: CollectorRegistry
    """The Prometheus registry of the write path's metrics (serve it on ``/metrics``)."""
    consumer: Consumer
    importer: Importer
    """``POST /v1/import`` (``app.state.importer``, see ``api/routes/imports.py``)."""
    readiness: dict[str, Check]
    """``/readyz``: ``database`` reachable, ``broker`` connected."""
    commands: CommandClient | None = None
    """``POST /v1/devices/{id}/commands/{name}`` (its own MQTT connection; None: 503)."""


AppFactory = Callable[[ServeParts], Any]


def api_app(parts: ServeParts) -> FastAPI:
    """The HTTP app over the write side's parts: tokens checked against the auth service's JWKS."""
    auth = parts.settings.auth
    state = ApiState(
        settings=parts.settings,
        engine=parts.engine,
        token_verifier=RemoteJWKS(auth.jwks_url, issuer=auth.issuer, audience=auth.audience),
        registry=parts.registry,
        readiness=parts.readiness,
        importer=parts.importer,
        commands=parts.commands,
    )
    return create_app(state)


def run(
    settings: IngestSettings,
    *,
    app_factory: AppFactory | None = api_app,
    host: str | None = None,
    port: int | None = None,
    tune_collector: bool = True,
) -> None:
    """Serve until SIGTERM/SIGINT.  ``tune_collector``: :func:`tune_gc` (process-wide: for
    the ``edge-ingest serve`` process, not for a host that embeds this)."""
    # From the first moment: a SIGTERM while starting (a quick restart) must stop the
    # service cleanly once it runs, neither kill it half-started nor be forgotten.
    stopped = _on_stop_signals()
    engine = open_database(settings)
    try:
        where = engine.url.render_as_string(hide_password=True)
        log.info("database %s", where)
        try:
            wait_for_database(engine)  # retried for 30 s: a service often starts before its database
            migrate.upgrade(engine)
        except sa.exc.SQLAlchemyError as exc:
            raise StoreUnavailable(f"database {where}: {str(exc).splitlines()[0]}") from exc
        maintain = _maintenance(engine, settings)
        maintain()
        metrics = IngestMetrics()
        consumer = Consumer(settings, engine, metrics=metrics)
        parts = ServeParts(
            settings=settings,
            engine=engine,
            registry=metrics.registry,
            consumer=consumer,
            importer=Importer(
                consumer.store, consumer, metrics, settings, check_device=consumer.check_device
            ),
            readiness={"database": database_reachable(engine), "broker": consumer.broker_connected},
            commands=CommandClient(
                settings.mqtt, commands_client_id(consumer.client_id.value), registry=metrics.registry
            ),
        )
        stop = threading.Event()
        ticker = threading.Thread(target=_every, args=(MAINTENANCE_S, stop, maintain), daemon=True)
        if tune_collector:
            tune_gc()
        consumer.start()
        commands = parts.commands
        assert commands is not None
        commands.start()
        ticker.start()
        try:
            app = app_factory(parts) if app_factory is not None else None
            if app is None:
                log.info("consumer running (client id %s); no HTTP API", consumer.client_id.value)
                _wait_for_signal(stopped)
            else:
                _serve_http(app, settings, host, port, stopped)
        finally:
            stop.set()
            # uvicorn has waited for the requests in flight, a command's up to its timeout (60 s
            # at most): none is waiting by now, stop() fails any that still were (503).
            commands.stop()
            consumer.stop()
            log.info("stopped")
    finally:
        engine.dispose()


def tune_gc() -> None:
    """Collect cyclic garbage less often, and never look again at what is loaded by now.

    The consumer holds up to ``mqtt.receive_maximum`` messages of decoded events and their
    rows, each living long enough (decoding, the queue, the transaction) to reach the older
    generations, which CPython's default thresholds then scan again and again.  Reference
    counting still frees at once everything that is not a cycle; ``gc.freeze`` takes the
    modules, settings and objects loaded at start out of every later collection.
    """
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


def open_database(settings: IngestSettings) -> Engine:
    """The engine; the state directory (and a SQLite file's folder) made first, or SQLite
    could not create its file.  Raises :class:`IngestError` when they cannot be made."""
    url = make_url(normalise_url(settings.database_url))
    folders = [settings.state_dir]
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        folders.append(Path(url.database).parent)
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise IngestError(f"cannot make {folder}: {exc}") from exc
    return make_engine(settings.database_url)


def _serve_http(
    app: Any, settings: IngestSettings, host: str | None, port: int | None, stopped: threading.Event
) -> None:
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host or settings.server.host,
        port=port or settings.server.port,
        log_level=settings.log_level,
        proxy_headers=False,
    )
    # uvicorn handles SIGTERM/SIGINT while it serves, then restores the handlers it found
    # and raises the signal again: with the default ones the process would die there,
    # before the consumer has committed and acknowledged what it holds.  Ours only note it;
    # a signal noted before uvicorn took the signals over (while starting) stops it too.
    server = uvicorn.Server(config)

    def stop_when_signalled() -> None:
        stopped.wait()
        server.should_exit = True

    threading.Thread(target=stop_when_signalled, name="stop-signal", daemon=True).start()
    server.run()


def _on_stop_signals() -> threading.Event:
    stopped = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: stopping", signal.Signals(signum).name)
        stopped.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)
    return stopped


def _wait_for_signal(stopped: threading.Event) -> None:
    while not stopped.wait(3600):
        pass


def _maintenance(engine: Engine, settings: IngestSettings) -> Callable[[], None]:
    def maintain() -> None:
        try:
            partitions.maintain(
                engine, interval=settings.database.partition_interval, retention_s=settings.database.retention
            )
        except Exception:  # the consumer goes on; readings land in the default partition meanwhile
            log.exception("readings partition maintenance failed; trying again in %.0f s", MAINTENANCE_S)

    return maintain


def _every(seconds: float, stop: threading.Event, action: Callable[[], None]) -> None:
    while not stop.wait(seconds):
        action()
