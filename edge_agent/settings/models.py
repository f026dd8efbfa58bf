"""The agent's settings as pydantic models: what each section holds, its defaults and limits.

Every model forbids unknown keys, because a typo in the field must be an error, not a
silently ignored setting.  Where the values come from (the TOML file, ``EDGE_…``
variables) is :mod:`edge_agent.settings.loading`'s business, not these models'.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    model_validator,
)

from edge_agent.sensor_tests.config import TestSettings
from edge_agent.units import ByteSize, Duration, parse_int_literal

SIM = "sim"
SIM_PORT_SCHEME = "sim://"

# Device ids end up in MQTT topics and certificate CNs: no '/', '+', '#', spaces.
DeviceId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
SensorName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


def _seven_bit(address: int) -> int:
    # Field(ge=, le=) would say "less than or equal to 119" of an address written 0x99:
    # TOML has already turned it into 153, so the message gives both bases.
    if not 0x03 <= address <= 0x77:
        written = f"{address} (0x{address:02X})" if address >= 0 else str(address)
        raise ValueError(f"{written} is not a 7-bit I2C address; use 0x03 to 0x77")
    return address


I2CAddress = Annotated[int, BeforeValidator(parse_int_literal), AfterValidator(_seven_bit)]
BusNumber = Annotated[int, BeforeValidator(parse_int_literal), Field(ge=0)]


def _no_nul(path: Path) -> Path:
    # The OS takes a path as a C string, and Python refuses one with a NUL byte the
    # first time it is used: say so here, at the field, rather than crash there.
    if "\x00" in str(path):
        raise ValueError("a path cannot contain a NUL byte (\\u0000)")
    return path


OsPath = Annotated[Path, AfterValidator(_no_nul)]
"""A path the operating system can take (pydantic's own ``FilePath`` would also require it to exist)."""


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
    state_dir: OsPath = Field(Path("/var/lib/edge-agent"), description="Outbox, calibration, certificates")
    outbox_file: str = Field("outbox.db", pattern=r"^[^/\x00]+$", description="Outbox file name in state_dir")
    max_bytes: ByteSize = Field(256 * 1024**2, gt=0, description="Outbox size cap")
    max_age: Duration = Field(30 * 86400.0, gt=0, description="Oldest event kept, in seconds")
    commit_timeout: Duration = Field(
        5.0,
        ge=0.05,
        le=60,
        description="A commit waiting this long for the outbox (locked by another process) gives up:"
        " its events are dropped, counted and announced by a gap event",
    )
    commit_interval: Duration = Field(
        1.5,
        ge=0,
        le=2,
        description="Longest an event waits in memory for its transaction (0: at once); fewer, fuller commits"
        " wear the card less (docs/DURABILITY.md, 'Flash wear': why 1.5 s)",
    )


class TLSSettings(_Section):
    ca_file: OsPath = Field(description="CA certificate(s) that signed the broker's certificate")
    cert_file: OsPath | None = Field(None, description="Client certificate, for mutual TLS")
    key_file: OsPath | None = Field(None, description="Client private key, for mutual TLS")

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
    latest: bool = Field(
        False,
        description="Also publish each sensor's latest reading, retained and uncompressed, to "
        "devices/{id}/sensors/{sensor}/state (a view for other subscribers, not the record)",
    )
    latest_interval: Duration = Field(
        10.0, ge=0, description="At most one latest-value message per sensor in this many seconds"
    )


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
    """The per-sensor circuit breaker (see edge_agent/sampling/health.py)."""

    open_after: int = Field(5, ge=1, description="Consecutive errors that mark a sensor failed")
    probe_after: Duration = Field(30.0, gt=0, description="First probe of a failed sensor; doubles each time")
    probe_max: Duration = Field(600.0, gt=0, description="Longest wait between probes")
    close_after: int = Field(3, ge=1, description="Good reads after a probe before the sensor is ok again")
    not_ready_max: Duration = Field(
        120.0,
        ge=0,
        description="How long a sensor may answer 'not ready' (warming up, recovering from a chip reset) "
        "before that counts as errors",
    )


class AlarmSettings(_Section):
    """Alarm life cycle (see edge_agent/alarms.py): raised once, reminded, cleared."""

    remind_every: Duration = Field(3600.0, ge=0, description="Repeat an open alarm this often; 0 never")
    sensor_failed_after: Duration = Field(
        600.0, gt=0, description="A sensor failed (or not openable) this long raises a sensor_failed alarm"
    )


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


class HomeAssistantSettings(_Section):
    enabled: bool = Field(
        False,
        description="Retained Home Assistant MQTT discovery configs, one per sensor quantity "
        "(their state comes from the latest-value topic, published whatever mqtt.latest says)",
    )
    discovery_prefix: str = Field(
        "homeassistant", pattern=r"^[A-Za-z0-9_-]+$", description="Home Assistant's discovery prefix"
    )


class Settings(BaseModel):
    """The whole agent configuration.

    Built directly, it is what it is given; ``load_settings`` is what adds the file and
    the ``EDGE_…`` variables."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    device: DeviceSettings
    storage: StorageSettings = StorageSettings()
    mqtt: MQTTSettings = MQTTSettings()
    metrics: MetricsSettings = MetricsSettings()
    logging: LoggingSettings = LoggingSettings()
    health: HealthSettings = HealthSettings()
    alarms: AlarmSettings = AlarmSettings()
    sensors: list[SensorSettings] = Field(default_factory=list)
    tests: list[TestSettings] = Field(default_factory=list, description="Sensor tests ([[tests]])")
    homeassistant: HomeAssistantSettings = HomeAssistantSettings()

    @model_validator(mode="after")
    def _homeassistant_node_id(self) -> Settings:
        # Home Assistant's node ids are [a-zA-Z0-9_-]: the device id is the node id (and
        # the broker's ACL grants homeassistant/sensor/<device id>/+/config).
        if self.homeassistant.enabled and not re.fullmatch(r"[A-Za-z0-9_-]+", self.device.id):
            raise ValueError(
                f"homeassistant.enabled needs a device.id of letters, digits, _ and - only, not {self.device.id!r}"
            )
        return self

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
