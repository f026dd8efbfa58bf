"""The latest-value view: one retained, uncompressed message per sensor.

``devices/{device_id}/sensors/{sensor}/state`` (QoS 0, retained) holds a sensor's latest
reading as plain JSON, for subscribers that want "what is it now" without decoding
batches (Home Assistant, Node-RED, ``mosquitto_sub | jq``).  It is a convenience view,
published beside the record and never through the outbox: it may skip readings (rate
limited) and is not acknowledged; the batches on ``…/events`` stay the record.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from edge_protocol.wire import ClockState, SensorName


def sensor_state_topic(device_id: str, sensor: str) -> str:
    return f"devices/{device_id}/sensors/{sensor}/state"


def sensor_states_filter(device_id: str = "+") -> str:
    """Every sensor of ``device_id`` (of every device by default)."""
    return sensor_state_topic(device_id, "+")


class LatestValue(BaseModel):
    """The payload of ``devices/{device_id}/sensors/{sensor}/state``."""

    model_config = ConfigDict(extra="forbid")

    sensor: SensorName
    ts: str = Field(description="RFC 3339 UTC with milliseconds: when the reading was taken")
    clock: ClockState
    values: dict[str, float] = Field(description="quantity → value, calibrated where cal says so")
    units: dict[str, str] = Field(description="quantity → unit symbol ('' when the name carries none)")
    cal: dict[str, int] = Field(
        default_factory=dict, description="quantity → id of the calibration applied (absent: raw)"
    )
