"""The agent's settings: a TOML file plus ``EDGE_…`` environment overrides.

Precedence, highest first: environment variables (``EDGE_MQTT__HOST``: nested with
``__``), then the TOML file (``--config PATH``, default
``/etc/edge-agent/edge-agent.toml``).  Every model forbids unknown keys, because a
typo in the field must be an error, not a silently ignored setting.

:func:`load_settings` returns validated :class:`Settings` or raises
:class:`~edge_agent.errors.ConfigError` listing *every* problem, each with the file or
environment variable it came from and its field path (``sensors[2].address``).
Driver-specific checks (the driver exists, bus fields fit its bus kind, the address is
one it can live at, its ``options`` table is valid) run after the generic ones, with
the drivers found through the entry-point registry.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from edge_agent.env_overrides import apply_env, env_paths
from edge_agent.errors import ConfigError, ConfigProblem
from edge_agent.identity.stored import apply_enrolled_identity
from edge_agent.sampling.driver_options import validate_options
from edge_agent.sampling.registry import DriverRegistry, load_registry
from edge_agent.sensor_tests.config import TestSettings, check_tests, drop_union_tag, test_model_of
from edge_agent.units import ByteSize, Duration, parse_int_literal

DEFAULT_CONFIG_PATH = Path("/etc/edge-agent/edge-agent.toml")
ENV_PREFIX = "EDGE_"
ENV_NOT_SETTINGS = frozenset({"EDGE_CONFIG"})
"""``EDGE_`` variables that are not settings (the CLI reads ``EDGE_CONFIG`` itself)."""

SIM = "sim"
SIM_PORT_SCHEME = "sim://"

# Device ids end up in MQTT topics and certificate CNs: no '/', '+', '#', spaces.
DeviceId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
SensorName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
I2CAddress = Annotated[int, BeforeValidator(parse_int_literal), Field(ge=0x03, le=0x77)]
BusNumber = Annotated[int, BeforeValidator(parse_int_literal), Field(ge=0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceSettings(_Section):
    id: DeviceId = Field(description="Unique device id; used in MQTT topics and certificates")
    name: str | None = None
    location: str | None = None
    clock_check: Literal["kernel", "none"] = Field(
        "kernel",
        description="How to know the wall clock is right: ask the kernel (NTP sync state), "
        "or 'none' to trust it (RTC or GPS time)",
    )


class StorageSettings(_Section):
    state_dir: Path = Field(Path("/var/lib/edge-agent"), description="Outbox, calibration, certificates")
    outbox_file: str = Field("outbox.db", pattern=r"^[^/]+$", description="Outbox file name in state_dir")
    max_bytes: ByteSize = Field(256 * 1024**2, gt=0, description="Outbox size cap")
    max_age: Duration = Field(30 * 86400.0, gt=0, description="Oldest event kept, in seconds")


class TLSSettings(_Section):
    ca_file: Path = Field(description="CA certificate(s) that signed the broker's certificate")
    cert_file: Path | None = Field(None, description="Client certificate, for mutual TLS")
    key_file: Path | None = Field(None, description="Client private key, for mutual TLS")

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> TLSSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (mutual TLS needs both)")
        return self


class MQTTSettings(_Section):
    host: str = "localhost"
    port: int = Field(1883, ge=1, le=65535)
    client_id: str | None = Field(None, description="Defaults to the device id")
    username: str | None = None
    password: SecretStr | None = None
    keepalive: Duration = Field(60.0, ge=5, le=65535)
    tls: TLSSettings | None = None
    delivery: Literal["broker", "end-to-end"] = Field(
        "broker",
        description="When an event leaves the outbox: on the broker's PUBACK, or when the ingest acknowledges it",
    )
    compression: Literal["none", "zlib"] = "none"
    batch_max_events: int = Field(100, ge=1, le=10_000)
    batch_max_bytes: ByteSize = Field(128 * 1024, ge=1024, le=64 * 1024**2)
    inflight_batches: int = Field(4, ge=1, le=64, description="Batches published and not yet acknowledged")
    ack_timeout: Duration = Field(30.0, gt=0, description="Resend a batch not acknowledged within this time")
    backlog_rate: float = Field(2000.0, gt=0, description="Most backlog events per second after an outage")
    session_expiry: Duration = Field(7 * 86400.0, ge=0, description="Broker keeps our session this long")
    reconnect_min: Duration = Field(1.0, gt=0)
    reconnect_max: Duration = Field(120.0, gt=0)


def _host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(
            'expected "HOST:PORT", e.g. "127.0.0.1:9108" (or "[::1]:9108"; port 0 picks a free one)'
        )
    return value


class MetricsSettings(_Section):
    enabled: bool = Field(True, description="Serve Prometheus metrics over HTTP")
    listen: Annotated[str, AfterValidator(_host_port)] = Field(
        "127.0.0.1:9108", description="Address of /metrics; 0.0.0.0:9108 exposes it to the network"
    )


class LoggingSettings(_Section):
    format: Literal["text", "json"] = Field("text", description="key=value text or one JSON object per line")
    level: Literal["debug", "info", "warning", "error"] = "info"
    repeat_window: Duration = Field(
        60.0, ge=0, description="An identical message is logged once per window, then counted; 0 logs all"
    )
    journal_prefix: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Start each line with its syslog priority (<4> warning…) so journald stores the level: "
        "'auto' when stdout is the journal ($JOURNAL_STREAM)",
    )


class HealthSettings(_Section):
    """The per-sensor circuit breaker (see edge_agent/sensor_health.py)."""

    open_after: int = Field(5, ge=1, description="Consecutive errors that mark a sensor failed")
    probe_after: Duration = Field(30.0, gt=0, description="First probe of a failed sensor; doubles each time")
    probe_max: Duration = Field(600.0, gt=0, description="Longest wait between probes")
    close_after: int = Field(3, ge=1, description="Good reads after a probe before the sensor is ok again")


class SensorSettings(_Section):
    name: SensorName
    driver: str
    bus: BusNumber | Literal["sim"] | None = Field(
        None, description='I2C bus number (/dev/i2c-N) or "sim" for the simulated bus'
    )
    address: I2CAddress | None = Field(None, description="7-bit I2C address, e.g. 0x76")
    port: str | None = Field(None, description="Serial device, e.g. /dev/serial0, or sim://")
    baudrate: int | None = Field(None, gt=0)
    interval: Duration = Field(10.0, ge=0.05, description="Sampling interval in seconds")
    timeout: Duration = Field(5.0, gt=0, description="A driver call taking longer is abandoned as hung")
    enabled: bool = True
    options: dict[str, Any] = Field(default_factory=dict, description="Driver options")

    @property
    def simulated(self) -> bool:
        return self.bus == SIM or (self.port or "").startswith(SIM_PORT_SCHEME)


class Settings(BaseModel):
    """The whole agent configuration (``EDGE_…`` variables are merged in by :func:`load_settings`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    device: DeviceSettings
    storage: StorageSettings = StorageSettings()
    mqtt: MQTTSettings = MQTTSettings()
    metrics: MetricsSettings = MetricsSettings()
    logging: LoggingSettings = LoggingSettings()
    health: HealthSettings = HealthSettings()
    sensors: list[SensorSettings] = Field(default_factory=list)
    tests: list[TestSettings] = Field(default_factory=list, description="Sensor tests ([[tests]])")

    @model_validator(mode="after")
    def _unique_sensor_names(self) -> Settings:
        seen: set[str] = set()
        for sensor in self.sensors:
            if sensor.name in seen:
                raise ValueError(f"sensor name {sensor.name!r} is used twice; names must be unique")
            seen.add(sensor.name)
        return self

    def sensor(self, name: str) -> SensorSettings | None:
        return next((s for s in self.sensors if s.name == name), None)


def load_settings(
    path: Path = DEFAULT_CONFIG_PATH,
    *,
    environ: dict[str, str] | None = None,
    registry: DriverRegistry | None = None,
) -> Settings:
    """Read, validate and cross-check the configuration, or raise :class:`ConfigError`."""
    source = str(path)
    data = _read_toml(path)
    env = dict(os.environ if environ is None else environ)
    problems = _unknown_env_vars(env)
    data, env_problems = apply_env(data, env, Settings, prefix=ENV_PREFIX, ignore=ENV_NOT_SETTINGS)
    problems += env_problems
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        problems += [_problem(err, source, env, data) for err in exc.errors()]
        raise ConfigError(problems) from exc
    if problems:
        raise ConfigError(problems)
    registry = registry or load_registry()
    settings, problems = _check_drivers(settings, source, registry)
    problems += check_tests(settings, source, registry)
    if problems:
        raise ConfigError(problems)
    # Enrolled credentials in the state dir fill [mqtt.tls] when the file leaves it out.
    return apply_enrolled_identity(_resolve_paths(settings, path.parent))


def _resolve_paths(settings: Settings, base: Path) -> Settings:
    """Relative paths in the file are relative to its folder, not to the working directory."""

    def resolve(p: Path) -> Path:
        return p if p.is_absolute() else (base / p).resolve()

    storage = settings.storage.model_copy(update={"state_dir": resolve(settings.storage.state_dir)})
    mqtt = settings.mqtt
    if mqtt.tls is not None:
        tls = mqtt.tls
        files = {
            k: resolve(v)
            for k, v in (("ca_file", tls.ca_file), ("cert_file", tls.cert_file), ("key_file", tls.key_file))
            if v is not None
        }
        mqtt = mqtt.model_copy(update={"tls": tls.model_copy(update=files)})
    return settings.model_copy(update={"storage": storage, "mqtt": mqtt})


def _read_toml(path: Path) -> dict[str, Any]:
    source = str(path)
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError as exc:
        hint = (
            "create it or pass --config PATH (config/edge-agent.toml in the source tree is a simulated setup)"
        )
        raise ConfigError([ConfigProblem(source, "", f"file not found; {hint}")]) from exc
    except PermissionError as exc:
        raise ConfigError([ConfigProblem(source, "", f"cannot read the file: {exc.strerror}")]) from exc
    except IsADirectoryError as exc:
        raise ConfigError([ConfigProblem(source, "", "is a directory, not a TOML file")]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigProblem(source, "", f"invalid TOML: {exc}")]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigProblem(source, "", f"not UTF-8 text: {exc}")]) from exc


def _env_paths(env: dict[str, str]) -> dict[tuple[str, ...], str]:
    return env_paths(env, ENV_PREFIX, ENV_NOT_SETTINGS)


def _unknown_env_vars(env: dict[str, str]) -> list[ConfigProblem]:
    problems = []
    fields = set(Settings.model_fields)
    for path, key in _env_paths(env).items():
        if path[0] not in fields:
            problems.append(
                ConfigProblem(f"environment variable {key}", "", _unknown_key_message(path[0], fields))
            )
    return problems


def _unknown_key_message(key: str, known: set[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known keys: {', '.join(sorted(known))})"
    return f"unknown key {key!r}{hint}"


def format_path(loc: tuple[str | int, ...]) -> str:
    """``("sensors", 2, "address")`` -> ``sensors[2].address``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _model_at(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The pydantic model that holds the field at ``loc`` (for 'did you mean')."""
    model: type[BaseModel] = Settings
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        inner = _first_model(field.annotation)
        if inner is None:
            return None
        model = inner
    return model


def _first_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _first_model(arg)
        if found is not None:
            return found
    return None


def _problem(err: ErrorDetails, source: str, env: dict[str, str], data: dict[str, Any]) -> ConfigProblem:
    # Model-level validators report at the model, not the field: drop pydantic's
    # type tags ("function-after[...]") that appear in the location for unions.
    loc = tuple(p for p in err["loc"] if isinstance(p, int) or not re.match(r"^[a-z-]+\[", str(p)))
    loc = drop_union_tag(loc)
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        parent = test_model_of(loc, data) if loc[0] == "tests" else _model_at(loc[:-1])
        known = set(parent.model_fields) if parent else set()
        message = _unknown_key_message(str(loc[-1]), known)
    elif err["type"] == "missing":
        message = "required but missing"
    named = _sensor_label(loc, data)
    return ConfigProblem(_source_of(loc, source, env), format_path(loc) + named, message)


def _sensor_label(loc: tuple[str | int, ...], data: dict[str, Any]) -> str:
    """`` (sensor "climate")`` so the user need not count ``[[sensors]]`` or ``[[tests]]`` tables."""
    if len(loc) >= 2 and loc[0] in ("sensors", "tests") and isinstance(loc[1], int):
        tables = data.get(str(loc[0]))
        if isinstance(tables, list) and loc[1] < len(tables) and isinstance(tables[loc[1]], dict):
            name = tables[loc[1]].get("name")
            if isinstance(name, str):
                return f' ({str(loc[0])[:-1]} "{name}")'
    return ""


def _source_of(loc: tuple[str | int, ...], source: str, env: dict[str, str]) -> str:
    for path, key in _env_paths(env).items():
        n = min(len(path), len(loc))
        if tuple(str(p) for p in loc[:n]) == path[:n]:
            return f"environment variable {key}"
    return source


def _check_drivers(
    settings: Settings, source: str, registry: DriverRegistry
) -> tuple[Settings, list[ConfigProblem]]:
    """Driver-dependent checks; returns settings with each ``options`` table normalised."""
    problems: list[ConfigProblem] = []
    sensors: list[SensorSettings] = []
    for i, sensor in enumerate(settings.sensors):

        def problem(field: str, message: str, i: int = i, name: str = sensor.name) -> None:
            path = f"sensors[{i}].{field}" + f' (sensor "{name}")'
            problems.append(ConfigProblem(source, path, message))

        found = registry.get(sensor.driver)
        if found is None:
            close = difflib.get_close_matches(sensor.driver, registry.names(), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problem(
                "driver", f"unknown driver {sensor.driver!r}; {hint}installed: {', '.join(registry.names())}"
            )
            sensors.append(sensor)
            continue
        spec = found.spec
        if spec.bus == "i2c":
            if sensor.bus is None:
                problem("bus", f'required for the I2C driver {spec.name!r}: a bus number such as 1, or "sim"')
            if sensor.address is None:
                problem("address", f"required for {spec.name!r}; it can live at {_hex_list(spec.addresses)}")
            elif sensor.address not in spec.addresses:
                problem(
                    "address",
                    f"0x{sensor.address:02x} is not an address {spec.name!r} can live at "
                    f"({_hex_list(spec.addresses)})",
                )
            for name in ("port", "baudrate"):
                if getattr(sensor, name) is not None:
                    problem(name, f"not used by the I2C driver {spec.name!r}; remove it")
        else:
            if not sensor.port:
                problem("port", f"required for the serial driver {spec.name!r}: e.g. /dev/serial0, or sim://")
            for name in ("bus", "address"):
                if getattr(sensor, name) is not None:
                    problem(name, f"not used by the serial driver {spec.name!r} (use port); remove it")
            if sensor.port and sensor.port.startswith(SIM_PORT_SCHEME):
                target = sensor.port.removeprefix(SIM_PORT_SCHEME) or spec.name
                other = registry.get(target)
                if other is None or registry.simulator(target) is None or other.spec.bus != "serial":
                    problem(
                        "port", f"no serial simulator named {target!r}; use sim:// for {spec.name!r}'s own"
                    )
        if sensor.simulated and spec.bus == "i2c" and registry.simulator(spec.name) is None:
            problem("bus", f"driver {spec.name!r} {registry.no_simulator(spec.name)}; use a real bus number")
        options = sensor.options
        if spec.options is not None:
            options, option_problems = validate_options(spec.options, sensor.options)
            for p in option_problems:
                msg = p.message
                if p.unknown_key is not None:
                    msg = _unknown_key_message(p.unknown_key, set(p.known_keys))
                problem(format_path(("options", *p.loc)), msg)
        elif sensor.options:
            problem("options", f"driver {spec.name!r} takes no options")
        sensors.append(sensor.model_copy(update={"options": options}))
    return settings.model_copy(update={"sensors": sensors}), problems


def _hex_list(addresses: tuple[int, ...]) -> str:
    return ", ".join(f"0x{a:02x}" for a in addresses)
