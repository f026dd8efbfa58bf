"""Remote commands from the cloud over MQTT v5 request/response (see :mod:`.commands`)."""

from edge_agent.remote.commands import CommandDispatcher, CommandStats, Reply

__all__ = ["CommandDispatcher", "CommandStats", "Reply"]
