"""The ingest's MQTT consumer (docs/INGEST.md): ``Consumer`` in ``consumer.py`` wires
``link`` (one ``session`` at a time, reconnected with jitter; ``identity`` names it),
``pipeline`` (decoding and writing threads; ``decode``, ``known_devices``) and the store;
``metrics`` holds its Prometheus metrics."""

from edge_cloud.ingest.consumer.consumer import Consumer
from edge_cloud.ingest.consumer.metrics import IngestMetrics

__all__ = ["Consumer", "IngestMetrics"]
