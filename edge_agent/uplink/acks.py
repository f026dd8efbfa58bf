"""Reading the ingest's acknowledgements from ``devices/{id}/acks``.

``{"epoch": "<outbox epoch>", "seqs": [[first, last], …]}``: inclusive seq ranges the ingest
has durably stored.  Anything else is malformed: the caller counts it and drops it.
"""

from __future__ import annotations

from pydantic import ValidationError

from edge_protocol.wire import Ack

MAX_ACK_BYTES = 1 << 20
MAX_RANGES = 100_000


def parse_ack(payload: bytes) -> Ack:
    """The validated ack, or ``ValueError`` saying what is wrong with it."""
    if len(payload) > MAX_ACK_BYTES:
        raise ValueError(f"ack of {len(payload)} bytes exceeds {MAX_ACK_BYTES}")
    try:
        ack = Ack.model_validate_json(payload)
    except ValidationError as exc:
        raise ValueError(
            f"not an ack: {exc.error_count()} problem{'' if exc.error_count() == 1 else 's'}, first: {exc.errors()[0]['msg']}"
        ) from exc
    if len(ack.seqs) > MAX_RANGES:
        raise ValueError(f"ack with {len(ack.seqs)} ranges exceeds {MAX_RANGES}")
    for first, last in ack.seqs:
        if first < 1 or last < first:
            raise ValueError(f"bad seq range [{first}, {last}]")
    return ack
