"""Home Assistant MQTT discovery: the retained config that makes a sensor quantity appear
in Home Assistant with no YAML (its documented discovery format:
``<prefix>/sensor/<node_id>/<object_id>/config``, node and object ids ``[a-zA-Z0-9_-]``).

Its state comes from the latest-value topic (:mod:`edge_protocol.latest`) through a value
template; it is available while the device's retained status says ``online`` (the birth,
and the will the broker publishes when the device vanishes).
"""

from __future__ import annotations

import re
from typing import Any

from edge_agent import __version__
from edge_protocol.latest import sensor_state_topic
from edge_protocol.units import unit_of
from edge_protocol.wire import status_topic

_NOT_ID = re.compile(r"[^A-Za-z0-9_-]")


def object_id(sensor: str, quantity: str) -> str:
    return _NOT_ID.sub("_", f"{sensor}_{quantity}")


def discovery_topic(prefix: str, device_id: str, sensor: str, quantity: str) -> str:
    return f"{prefix}/sensor/{device_id}/{object_id(sensor, quantity)}/config"


def discovery_config(device_id: str, sensor: str, quantity: str) -> dict[str, Any]:
    """The config of one sensor quantity, in Home Assistant's abbreviation-free keys."""
    unit = unit_of(quantity)
    config: dict[str, Any] = {
        "name": f"{sensor} {quantity}",
        "unique_id": f"edge-agent_{device_id}_{object_id(sensor, quantity)}",
        "object_id": f"{device_id}_{object_id(sensor, quantity)}",
        "state_topic": sensor_state_topic(device_id, sensor),
        "value_template": f"{{{{ value_json['values']['{quantity}'] }}}}",
        "json_attributes_topic": sensor_state_topic(device_id, sensor),
        "json_attributes_template": "{{ {'ts': value_json.ts, 'clock': value_json.clock} | tojson }}",
        "state_class": unit.state_class if unit is not None else "measurement",
        "availability_topic": status_topic(device_id),
        "availability_template": "{{ value_json.state }}",
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": {
            "identifiers": [f"edge-agent_{device_id}"],
            "name": device_id,
            "manufacturer": "edge-agent",
            "model": "edge-agent gateway",
            "sw_version": __version__,
        },
        "origin": {"name": "edge-agent", "sw_version": __version__},
    }
    if unit is not None:
        config["unit_of_measurement"] = unit.symbol
        if unit.device_class is not None:
            config["device_class"] = unit.device_class
    return config
