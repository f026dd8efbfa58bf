"""The agent's settings: a TOML file plus ``EDGE_…`` environment variables.

:func:`load_settings` returns validated :class:`Settings` or raises
:class:`~edge_agent.errors.ConfigError` listing *every* problem, each with the file or
environment variable it came from and its field path (``sensors[2].address``).

One job per module, each importing only those before it (nothing here imports this
package back, so ``from edge_agent.settings import X`` is safe from anywhere):

* ``models``      the pydantic models of every section;
* ``environment`` the ``EDGE_…`` variables, through pydantic-settings' environment source;
* ``environment_problems`` the variables that do not take effect, as ``ConfigProblem`` lines;
* ``problems``    pydantic's validation errors as ``ConfigProblem`` lines;
* ``checks``      the cross-checks against the installed drivers, and of ``[[tests]]``;
* ``enrolled``    the enrolled identity filling ``[mqtt.tls]`` when the file is silent;
* ``loading``     file + environment, validation, checks: :func:`load_settings`.
"""

from edge_agent.settings.environment import ENV_NOT_SETTINGS, ENV_PREFIX
from edge_agent.settings.loading import DEFAULT_CONFIG_PATH, load_settings
from edge_agent.settings.models import (
    SIM,
    SIM_PORT_SCHEME,
    AlarmSettings,
    DeviceSettings,
    HealthSettings,
    HomeAssistantSettings,
    LoggingSettings,
    MetricsSettings,
    MQTTSettings,
    SensorSettings,
    Settings,
    StorageSettings,
    TLSSettings,
)
from edge_agent.settings.problems import format_path

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ENV_NOT_SETTINGS",
    "ENV_PREFIX",
    "SIM",
    "SIM_PORT_SCHEME",
    "AlarmSettings",
    "DeviceSettings",
    "HealthSettings",
    "HomeAssistantSettings",
    "LoggingSettings",
    "MQTTSettings",
    "MetricsSettings",
    "SensorSettings",
    "Settings",
    "StorageSettings",
    "TLSSettings",
    "format_path",
    "load_settings",
]
