"""``edge-agent run``: the daemon."""

from __future__ import annotations

import asyncio
import logging

import typer

from edge_agent.cli.common import DEFAULT_CONFIG, ConfigOption, exit_config_error, load_config
from edge_agent.errors import ConfigError
from edge_agent.outbox.errors import OutboxError
from edge_agent.service.logs import configure_logging, secrets_of

EX_TEMPFAIL = 75

log = logging.getLogger("edge_agent.daemon")


def run(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Run the agent: sample sensors, commit every event to the outbox, forward over MQTT."""
    settings = load_config(config)
    # One line per event worth knowing, to stdout for journald; secrets masked.
    configure_logging(settings.logging, secrets=secrets_of(settings))
    from edge_agent.daemon.main import run_daemon  # keeps paho/aiosqlite out of the other commands' start-up

    try:
        asyncio.run(run_daemon(settings, config))
    except ConfigError as exc:
        exit_config_error(exc)
    except OutboxError as exc:
        # Another daemon holds the outbox lock, or the state directory is unusable.  A log
        # line like every other (level, logger, one line), so journald and log shippers
        # keep it with the rest rather than as bare text on stderr.
        log.critical("cannot run, exiting %d (systemd retries): %s", EX_TEMPFAIL, exc)
        raise typer.Exit(EX_TEMPFAIL) from exc
    except KeyboardInterrupt:
        pass
