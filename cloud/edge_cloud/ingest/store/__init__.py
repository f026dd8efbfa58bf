"""The ingest's write path: a batch of validated messages in one transaction (``Store.write``).

``model`` (what goes in and comes out), ``rows`` (an envelope → its rows, or its refusal),
``prepare`` (a work → rows, before the transaction), ``inserts`` (the ledger's
insert-or-ignore and bulk rows: COPY on PostgreSQL, executemany elsewhere), ``series``
(the readings' series ids: cached, new ones inserted-or-ignored), ``devices``,
``received``, ``quarantine`` (the other tables), ``store`` (the transaction).
"""

from edge_cloud.ingest.store.model import (
    DeviceAck,
    EventsMessage,
    Outcome,
    Refusal,
    RefusalReason,
    StatusMessage,
    Work,
)
from edge_cloud.ingest.store.store import Store

__all__ = [
    "DeviceAck",
    "EventsMessage",
    "Outcome",
    "Refusal",
    "RefusalReason",
    "StatusMessage",
    "Store",
    "Work",
]
