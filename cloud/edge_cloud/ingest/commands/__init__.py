"""Remote commands from the ingest to devices (docs/PROTOCOL.md, Remote commands): the
:class:`CommandClient` (``client.py``) over its own MQTT connection (``connection.py``),
used by ``POST /v1/devices/{id}/commands/{name}`` (``api/routes/commands.py``)."""

from edge_cloud.ingest.commands.client import CommandClient, DeviceError, Reply
from edge_cloud.ingest.commands.connection import commands_client_id

__all__ = ["CommandClient", "DeviceError", "Reply", "commands_client_id"]
