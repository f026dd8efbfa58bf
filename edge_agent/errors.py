"""Errors of the edge-agent daemon and CLI.

::

    EdgeAgentError
     ├── ConfigError         the configuration is invalid; carries every ConfigProblem.
     │                       Never retried: the CLI and the daemon exit with status 78
     │                       (EX_CONFIG) so systemd does not restart-loop.
     ├── HardwareOpenError   a bus or port named in the config cannot be opened
     │                       (missing /dev/i2c-N, permission denied); errno kept
     ├── OutboxError         (edge_agent.outbox.errors) the outbox cannot be used
     │    ├── OutboxClosedError   used after close / writer stopped
     │    ├── OutboxLockedError   another process holds the outbox (a second daemon)
     │    └── OutboxFullError     no room even after evicting (disk full beyond the reserve)
     ├── UplinkError         (edge_agent.uplink.errors) MQTT trouble, drawn in that module
     ├── CalibrationStoreError  (edge_agent.calibration.store) calibration.db unusable
     ├── CalibrationInputError  (edge_agent.calibration.fit, also a ValueError) reference
     │                       points that give no sane correction; nothing is saved
     ├── CannotJudge         (edge_agent.sensor_tests.kinds) a sensor test could not reach
     │                       a verdict: its result is ``error``
     └── StatusUnavailable   (edge_agent.service.status_server) ``edge-agent status``
                             found no running daemon, or a reply that is not a status

Sensor failures are :class:`edge_drivers.api.DriverError` (the drivers package stands on
its own and has its own tree); the agent catches them per sensor.
"""

from __future__ import annotations

from edge_protocol.config_errors import EX_CONFIG, ConfigInvalid, ConfigProblem

__all__ = ["EX_CONFIG", "ConfigError", "ConfigProblem", "EdgeAgentError", "HardwareOpenError"]


class EdgeAgentError(Exception):
    """Base class of the agent's own errors."""


class ConfigError(EdgeAgentError, ConfigInvalid):
    """The configuration cannot be used.  ``problems`` lists every
    :class:`~edge_protocol.config_errors.ConfigProblem` found (the format every edge-*
    command shares)."""


class HardwareOpenError(EdgeAgentError):
    """A bus or serial port could not be opened."""

    def __init__(self, message: str, *, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno
