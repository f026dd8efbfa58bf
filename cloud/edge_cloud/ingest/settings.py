"""Settings of the ingest service: a TOML file (``--config``) plus ``INGEST_…`` environment
variables (nested with ``__``: ``INGEST_MQTT__PORT=8883``), environment first.

Relative paths in the file are relative to the file's folder.  Every section forbids
unknown keys.  Problems are reported with file/variable and field; the CLI exits 78.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from edge_cloud.common.config import Seconds
from edge_cloud.common.config import load_settings as _load
from edge_cloud.common.errors import ConfigError, ConfigProblem

ENV_PREFIX = "INGEST_"
DEFAULT_CONFIG_PATH = Path("/etc/edge-ingest/edge-ingest.toml")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Section):
    host: str = Field("127.0.0.1", description="Address `edge-ingest serve` listens on (the HTTP API)")
    port: int = Field(8090, ge=1, le=65535)


class DatabaseSettings(_Section):
    url: str | None = Field(
        None,
        description="SQLAlchemy URL; default sqlite:///<state_dir>/ingest.db; postgresql://… for PostgreSQL",
    )
    partition_interval: Literal["day", "week", "month"] = Field(
        "week", description="PostgreSQL: one readings partition per interval of event time"
    )
    retention: Seconds | None = Field(
        None, ge=86400, description="PostgreSQL: drop readings partitions older than this; keep all if unset"
    )


class TLSSettings(_Section):
    ca_file: Path = Field(description="CA that signed the broker's certificate (the auth service's ca.pem)")
    cert_file: Path = Field(description="The ingest's client certificate (edge-auth service-cert)")
    key_file: Path = Field(description="Its private key")


class MQTTSettings(_Section):
    host: str = Field("localhost", description="The broker")
    port: int = Field(
        8884, ge=1, le=65535, description="The broker's service listener (edge-auth: broker.service_port)"
    )
    tls: TLSSettings | None = Field(None, description="Mutual TLS; unset for a plain local broker")
    username: str | None = None
    password: str | None = None
    client_id: str | None = Field(
        None,
        description="Defaults to <identity>@<host>-<slot>: unique per running process, the same after a "
        "restart (its session, and what the broker queued for it, are resumed); '@' keeps it out of "
        "the device ids",
    )
    share_group: str = Field(
        "ingest", pattern=r"^[A-Za-z0-9_-]{1,64}$", description="$share/<group>/… splits the load"
    )
    share_group_file: Path | None = Field(
        None,
        description="File holding the share group (edge-auth service-cert's ingest.share-group): a secret, "
        "since a device that knows the group can take a share of the events",
    )

    @model_validator(mode="after")
    def _secret_group_behind_tls(self) -> MQTTSettings:
        if self.tls is not None and self.share_group_file is None and self.share_group == "ingest":
            raise ValueError(
                "a broker with TLS needs the secret share group: set share_group_file to the "
                "ingest.share-group file edge-auth service-cert wrote (or share_group to its content)"
            )
        return self

    keepalive: Seconds = Field(30.0, ge=5, le=3600)
    receive_maximum: int = Field(
        64, ge=1, le=65535, description="Messages the broker may have in flight to us unacknowledged"
    )
    session_expiry: Seconds = Field(
        3600.0, ge=0, description="The broker keeps this process's session (and queued messages) this long"
    )
    reconnect_max: Seconds = Field(30.0, gt=0)


class ConsumerSettings(_Section):
    batch_max_events: int = Field(
        5000, ge=1, description="Events committed in one transaction, across messages"
    )
    batch_max_wait: Seconds = Field(
        0.05, gt=0, le=10, description="Longest a received message waits for its transaction"
    )
    max_payload_bytes: int = Field(
        16 * 2**20, ge=1024, le=256 * 2**20, description="Bigger payloads (after decompression) are refused"
    )
    quarantine_rows: int = Field(10_000, ge=10, description="Refused messages kept for the API; oldest go")
    devices: Literal["any", "known"] = Field(
        "any",
        description="'known': refuse events of a device the auth service does not list as enabled",
    )


class AuthServiceSettings(_Section):
    jwks_url: str = Field(
        "http://127.0.0.1:8080/.well-known/jwks.json", description="The auth service's signing keys"
    )
    issuer: str = Field("edge-auth", min_length=1)
    audience: str = Field("edge-cloud", min_length=1)
    api_url: str | None = Field(
        None, description="The auth service's API, to learn which devices are enabled (devices = 'known')"
    )
    api_key: str | None = Field(None, description="An API key with devices:read for api_url")
    token_url: str | None = Field(
        None,
        description="Where the dashboard's login sends an operator's password (the auth service's "
        "/v1/token); default: jwks_url's server",
    )

    @property
    def login_url(self) -> str:
        """``token_url``, or ``/v1/token`` on the server of ``jwks_url``."""
        if self.token_url:
            return self.token_url
        return re.sub(r"/\.well-known/jwks\.json$", "", self.jwks_url) + "/v1/token"


class IngestSettings(BaseSettings):
    """The whole ingest service configuration."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    state_dir: Path = Field(Path("/var/lib/edge-ingest"), description="The default SQLite database")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    mqtt: MQTTSettings = MQTTSettings()
    consumer: ConsumerSettings = ConsumerSettings()
    auth: AuthServiceSettings = AuthServiceSettings()

    @model_validator(mode="after")
    def _known_needs_the_auth_api(self) -> IngestSettings:
        if self.consumer.devices == "known" and not (self.auth.api_url and self.auth.api_key):
            raise ValueError("consumer.devices = 'known' needs auth.api_url and auth.api_key")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML data arrives as init kwargs; the environment overrides it.
        return (env_settings, init_settings)

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.state_dir / 'ingest.db'}"


def load_ingest_settings(path: Path | None) -> IngestSettings:
    """Validated settings (relative paths resolved against the file's folder), or ConfigError."""
    settings = _load(IngestSettings, path, env_prefix=ENV_PREFIX)
    base = path.parent if path is not None else Path.cwd()

    def resolve(p: Path) -> Path:
        return p if p.is_absolute() else (base / p).resolve()

    mqtt = settings.mqtt
    if mqtt.share_group_file is not None:
        mqtt = mqtt.model_copy(update={"share_group": _read_share_group(resolve(mqtt.share_group_file))})
    if mqtt.tls is not None:
        tls = mqtt.tls.model_copy(
            update={
                "ca_file": resolve(mqtt.tls.ca_file),
                "cert_file": resolve(mqtt.tls.cert_file),
                "key_file": resolve(mqtt.tls.key_file),
            }
        )
        mqtt = mqtt.model_copy(update={"tls": tls})
    url = settings.database.url
    if url and url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        relative = url.removeprefix("sqlite:///")
        if relative and relative != ":memory:":
            url = f"sqlite:///{resolve(Path(relative))}"
    return settings.model_copy(
        update={
            "state_dir": resolve(settings.state_dir),
            "mqtt": mqtt,
            "database": settings.database.model_copy(update={"url": url}),
        }
    )


def _read_share_group(path: Path) -> str:
    source = f"{path}"
    try:
        group = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            [ConfigProblem(source, "", f"cannot read the share group (mqtt.share_group_file): {exc}")]
        ) from exc
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", group):
        raise ConfigError(
            [ConfigProblem(source, "", "not a share group (letters, digits, '_' and '-', 1-64)")]
        )
    return group
