"""The enrolled identity fills ``[mqtt.tls]`` (and the broker address) when the file is silent.

``edge-agent enroll`` leaves the device's key, certificate, CA and broker address in
``<state_dir>/identity/`` (:mod:`edge_agent.identity.stored` reads them, knowing nothing
of the settings).  When ``[mqtt.tls]`` is not configured and an identity exists, the
uplink uses those files for mutual TLS (or the CA and the broker password, for a device
enrolled in password mode), and the broker address handed out at enrollment unless
``mqtt.host`` / ``mqtt.port`` are set.  ``EDGE_MQTT__TLS=null`` is not silence: it turns
TLS off, and the identity is not used.
"""

from __future__ import annotations

from pydantic import SecretStr

from edge_agent.identity.stored import load_identity
from edge_agent.settings.models import Settings, TLSSettings


def apply_enrolled_identity(settings: Settings) -> Settings:
    """Settings with the enrolled TLS files (and broker address) filled in where the config is silent."""
    mqtt = settings.mqtt
    # "tls" is in the fields set when a variable gave null for it (no TOML value is null).
    if mqtt.tls is not None or "tls" in mqtt.model_fields_set:
        return settings
    identity = load_identity(settings.storage.state_dir)
    if identity is None:
        return settings
    update: dict[str, object]
    if identity.mode == "password":
        try:
            password = identity.password_file.read_text().strip()
        except OSError:
            return settings
        update = {"tls": TLSSettings(ca_file=identity.ca), "password": SecretStr(password)}
        if "username" not in mqtt.model_fields_set:
            update["username"] = identity.device_id
    else:
        update = {"tls": TLSSettings(ca_file=identity.ca, cert_file=identity.cert, key_file=identity.key)}
    if "host" not in mqtt.model_fields_set:
        update["host"] = identity.broker_host
    if "port" not in mqtt.model_fields_set:
        update["port"] = identity.broker_port
    return settings.model_copy(update={"mqtt": mqtt.model_copy(update=update)})
