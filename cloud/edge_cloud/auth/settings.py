"""Settings of the auth service: a TOML file (``--config``) plus ``AUTH_…`` environment
variables (nested with ``__``: ``AUTH_BROKER__PORT=8883``), environment first.

Relative paths in the file are relative to the file's folder.  Every section forbids
unknown keys.  Problems are reported with file/variable and field; the CLI exits 78.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from edge_cloud.common.config import Seconds
from edge_cloud.common.config import load_settings as _load

ENV_PREFIX = "AUTH_"
DEFAULT_CONFIG_PATH = Path("/etc/edge-auth/edge-auth.toml")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Section):
    host: str = Field("127.0.0.1", description="Address `edge-auth serve` listens on")
    port: int = Field(8080, ge=1, le=65535)
    trusted_proxies: list[str] = Field(
        default_factory=list, description="Proxies whose X-Forwarded-For names the client (rate limits)"
    )
    max_body_bytes: int = Field(
        65536,
        ge=1024,
        le=16 * 1024 * 1024,
        description="Largest request body; a bigger one is refused with 413 while it streams in. "
        "The largest legitimate body, a renewal (certificate + CSR), is well under 64 KiB",
    )


class DatabaseSettings(_Section):
    url: str | None = Field(
        None,
        description="SQLAlchemy URL; default sqlite:///<state_dir>/auth.db; postgresql://… for PostgreSQL",
    )
    wait: Seconds = Field(
        30.0, ge=0, description="How long a start waits for PostgreSQL to answer before giving up (exit 75)"
    )


class TokenSettings(_Section):
    issuer: str = Field("edge-auth", min_length=1, description="`iss` of every access token")
    audience: str = Field("edge-cloud", min_length=1, description="`aud` the cloud services expect")
    access_ttl: Seconds = Field(900.0, ge=30, le=86400, description="Access token lifetime")
    refresh_ttl: Seconds = Field(30 * 86400.0, ge=60, description="Refresh token lifetime")
    subject_check_ttl: Seconds = Field(
        5.0,
        ge=0,
        le=300,
        description="How long this service trusts its last look at a token's operator or API key "
        "(disabled? deleted? revoked?); 0 looks on every request",
    )


class CertificateSettings(_Section):
    device_lifetime: Seconds = Field(90 * 86400.0, ge=60, description="Device certificate lifetime")
    ca_lifetime: Seconds = Field(10 * 365 * 86400.0, ge=86400, description="CA certificate lifetime")
    ca_name: str = Field("edge-agent device CA", min_length=1)
    service_ca_name: str = Field(
        "edge-agent service CA",
        min_length=1,
        description="The CA of the cloud services' client certificates (the service listener trusts only it)",
    )
    crl_lifetime: Seconds = Field(7 * 86400.0, ge=3600, description="nextUpdate of each CRL; rewritten daily")


class EnrollmentSettings(_Section):
    token_ttl: Seconds = Field(
        7 * 86400.0, ge=60, description="Lifetime of a device's one-time enrollment token"
    )
    claim_token_ttl: Seconds = Field(
        30 * 86400.0, ge=60, description="Default lifetime of a batch claim token"
    )
    renew_clock_skew: Seconds = Field(
        300.0, ge=10, le=3600, description="Accepted age of a renewal signature"
    )


class BrokerSettings(_Section):
    host: str = Field("localhost", description="Broker address handed to enrolled devices")
    port: int = Field(8883, ge=1, le=65535, description="Device listener (mutual TLS)")
    bind_address: str = Field("0.0.0.0", description="Address the device listener binds to")
    password_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Listener for password-mode devices (server TLS, password_file); off if unset",
    )
    service_port: int = Field(
        8884,
        ge=1,
        le=65535,
        description="Listener for the cloud services (the ingest): mutual TLS with the service CA, "
        "client ids chosen by the service",
    )
    service_bind_address: str = Field(
        "127.0.0.1",
        description="Address the service listener binds to: keep it off the devices' network",
    )
    server_names: list[str] = Field(
        default_factory=lambda: ["localhost", "127.0.0.1"],
        description="DNS names / IPs in the broker's server certificate (issued by the CA if absent)",
    )
    out_dir: Path = Field(
        Path("edge-auth-broker"),
        description="Where the Mosquitto files are written; default: edge-auth-broker beside state_dir "
        "(outside it: the state is private, these are for the broker's group)",
    )
    pid_file: Path | None = Field(None, description="Mosquitto's pid file: SIGHUP it after every change")
    max_packet_size: int = Field(
        262144, ge=1024, le=268435455, description="Bigger publishes are disconnected"
    )
    max_queued_messages: int = Field(
        100_000,
        ge=0,
        description="QoS 1 messages Mosquitto queues for one client beyond those in flight (0: no limit). "
        "Mosquitto's default, 1,000, dropped the ingest's share at a fleet's connect burst: "
        "resent only after the devices' ack timeout",
    )
    admin_host: str = Field(
        "127.0.0.1",
        description="Where this service reaches the device listener to cut a revoked device's session",
    )
    cut_sessions: bool = Field(
        True, description="Cut a revoked/disabled device's live session (client-id takeover)"
    )
    restart_command: list[str] | None = Field(
        None,
        description='How to restart Mosquitto (e.g. ["systemctl", "restart", "mosquitto"]): '
        "edge-auth revoke-service-cert --restart-broker runs it to cut a revoked service's live session",
    )
    log_denials: bool = Field(
        False,
        description="Make Mosquitto log every refused publish ('Denied PUBLISH'): its debug log "
        "type, which also logs every packet",
    )
    ingest_identity: str = Field(
        "ingest",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$",
        description="Certificate CN of the ingest service (its processes' client ids are <CN>@<instance>)",
    )


class RateLimitSettings(_Section):
    account_failures: int = Field(5, ge=1, description="Failed logins per account within `window`")
    address_failures: int = Field(20, ge=1, description="Failed logins per client address within `window`")
    window: Seconds = Field(900.0, ge=1)


class AuthSettings(BaseSettings):
    """The whole auth service configuration."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    state_dir: Path = Field(
        Path("/var/lib/edge-auth"), description="CA, signing keys, default SQLite database"
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    tokens: TokenSettings = TokenSettings()
    certificates: CertificateSettings = CertificateSettings()
    enrollment: EnrollmentSettings = EnrollmentSettings()
    broker: BrokerSettings = BrokerSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()

    @model_validator(mode="before")
    @classmethod
    def _broker_beside_the_state(cls, data: object) -> object:
        # The broker's files must be readable by its group, the state must not: siblings.
        if isinstance(data, dict):
            broker = data.get("broker")
            if broker is None or (isinstance(broker, dict) and "out_dir" not in broker):
                state_dir = Path(str(data.get("state_dir", cls.model_fields["state_dir"].default)))
                data = {
                    **data,
                    "broker": {**(broker or {}), "out_dir": state_dir.parent / "edge-auth-broker"},
                }
        return data

    @model_validator(mode="after")
    def _ports_differ(self) -> AuthSettings:
        b = self.broker
        if b.password_port is not None and b.password_port == b.port:
            raise ValueError("broker.password_port must differ from broker.port")
        if b.service_port in (b.port, b.password_port):
            raise ValueError("broker.service_port must differ from broker.port and broker.password_port")
        if self.certificates.service_ca_name == self.certificates.ca_name:
            # Either listener would still refuse the other CA's certificates (the signature
            # fails), but a log or an operator could no longer tell the two CAs apart.
            raise ValueError("certificates.service_ca_name must differ from certificates.ca_name")
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
        return self.database.url or f"sqlite:///{self.state_dir / 'auth.db'}"

    @property
    def ca_dir(self) -> Path:
        return self.state_dir / "ca"

    @property
    def service_ca_dir(self) -> Path:
        return self.state_dir / "service-ca"

    @property
    def signing_key_dir(self) -> Path:
        return self.state_dir / "signing-keys"


def load_auth_settings(path: Path | None) -> AuthSettings:
    """Validated settings (relative paths resolved against the file's folder), or ConfigError."""
    settings = _load(AuthSettings, path, env_prefix=ENV_PREFIX)
    base = path.parent if path is not None else Path.cwd()

    def resolve(p: Path) -> Path:
        return p if p.is_absolute() else (base / p).resolve()

    broker = settings.broker.model_copy(
        update={
            "out_dir": resolve(settings.broker.out_dir),
            "pid_file": resolve(settings.broker.pid_file) if settings.broker.pid_file else None,
        }
    )
    url = settings.database.url
    if url and url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        relative = url.removeprefix("sqlite:///")
        if relative and relative != ":memory:":
            url = f"sqlite:///{resolve(Path(relative))}"
    return settings.model_copy(
        update={
            "state_dir": resolve(settings.state_dir),
            "broker": broker,
            "database": settings.database.model_copy(update={"url": url}),
        }
    )
