"""``edge-ingest``: where the fleet's data lands (docs/INGEST.md).

It consumes ``devices/+/events`` and ``devices/+/status`` over an MQTT v5 shared
subscription, stores every event once (keyed on ``(device_id, id)``), acknowledges what
it committed on ``devices/{id}/acks`` (end-to-end delivery), and answers an operator's
questions over HTTP.  It owns its database and never reads the auth service's: keys come
from the auth service's JWKS, identities from the broker.
"""
