"""What opening an MQTT session needs: :class:`ConnectParams` (from :class:`MQTTSettings`),
the will, the TLS context, and the paho client configured from them.

:mod:`edge_agent.uplink.client` drives that client on the event loop; this module only
builds it (no I/O but reading the TLS files).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.settings import MQTTSettings, TLSSettings
from edge_agent.uplink.errors import TLSFailure

CONNECT_TIMEOUT = 10.0
"""Seconds for TCP + TLS + CONNACK together."""
MAX_SESSION_EXPIRY = 0xFFFFFFFF
"""MQTT v5: a Session Expiry Interval of 0xFFFFFFFF means 'never expires'."""


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True)
class ConnectParams:
    """Everything needed to open a session; built from :class:`MQTTSettings`."""

    host: str
    port: int
    client_id: str
    keepalive: int = 60
    session_expiry: int = 0
    """Seconds the broker keeps our session (subscriptions, queued acks) after we drop."""
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: TLSSettings | None = None
    will: Will | None = None
    connect_timeout: float = CONNECT_TIMEOUT
    max_inflight: int = 20
    """paho's own cap on unacknowledged QoS 1 messages (its per-ack cost grows with it)."""

    @classmethod
    def from_settings(
        cls, settings: MQTTSettings, *, device_id: str, will: Will | None = None, max_inflight: int = 20
    ) -> ConnectParams:
        return cls(
            host=settings.host,
            port=settings.port,
            client_id=settings.client_id or device_id,
            keepalive=int(settings.keepalive),
            session_expiry=min(int(settings.session_expiry), MAX_SESSION_EXPIRY),
            username=settings.username,
            password=settings.password.get_secret_value() if settings.password is not None else None,
            tls=settings.tls,
            will=will,
            max_inflight=max_inflight,
        )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}" + (" (TLS)" if self.tls else "")


def tls_context(tls: TLSSettings) -> ssl.SSLContext:
    """A client context verifying the broker against ``ca_file``, with our certificate for mutual TLS."""
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(tls.ca_file))
        if tls.cert_file is not None and tls.key_file is not None:
            ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    except (OSError, ssl.SSLError) as exc:
        raise TLSFailure(f"cannot load the TLS files ({tls.ca_file}, {tls.cert_file}): {exc}") from exc
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def paho_client(params: ConnectParams) -> mqtt.Client:
    """A fresh paho client for one session: MQTT v5, no automatic reconnect (the forwarder
    reconnects), credentials, TLS and will from ``params``."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=params.client_id,
        protocol=mqtt.MQTTv5,
        reconnect_on_failure=False,
    )
    # An exception in a callback must not abort paho mid-packet (it would skip its own
    # bookkeeping); paho reports it through on_log instead, logged as an error.
    client.suppress_exceptions = True
    client.connect_timeout = params.connect_timeout
    client.max_inflight_messages = params.max_inflight
    if params.username is not None:
        client.username_pw_set(params.username, params.password)
    if params.tls is not None:
        client.tls_set_context(tls_context(params.tls))
    if params.will is not None:
        w = params.will
        client.will_set(w.topic, w.payload, qos=w.qos, retain=w.retain)
    return client
