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

Sensor failures are :class:`edge_drivers.errors.DriverError` (the drivers package stands on
its own and has its own tree); the agent catches them per sensor.
"""

from __future__ import annotations

from dataclasses import dataclass

EX_CONFIG = 78
"""sysexits.h: configuration error.  systemd's RestartPreventExitStatus=78 stops a loop."""


class EdgeAgentError(Exception):
    """Base class of the agent's own errors."""


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with the configuration, located precisely."""

    source: str
    """The file, or the environment variable, the bad value came from."""
    path: str
    """Field path such as ``sensors[2].address``; empty for a whole-file problem."""
    message: str

    def __str__(self) -> str:
        where = f"{self.source}: {self.path}" if self.path else self.source
        return f"{where}: {self.message}"


class ConfigError(EdgeAgentError):
    """The configuration cannot be used.  ``problems`` lists every one found."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class HardwareOpenError(EdgeAgentError):
    """A bus or serial port could not be opened."""

    def __init__(self, message: str, *, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno
