"""The ingest validates batches into plain dicts (``BatchDict``): it must refuse exactly
what the models (``Batch``, ``Envelope``) refuse, and keep what they keep."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from edge_protocol.wire import BATCH_DICT, Batch
from tests.cloud.ingest_write.helpers import Device


def batch(**changes: Any) -> dict[str, Any]:
    event = Device("site-1").event()
    event.update(changes.pop("event", {}))
    for key in changes.pop("drop", ()):
        del event[key]
    return {"schema": 1, "device_id": "site-1", "events": [event], **changes}


@pytest.mark.parametrize(
    "bad",
    [
        batch(schema=2),
        batch(device_id="no/slash"),
        batch(events=[]),
        batch(extra=1),
        batch(event={"id": "not-a-uuid"}),
        batch(event={"id": "01a212ca-a868-491d-a903-95190d74c923"}),  # v4, not v7
        batch(event={"seq": 0}),
        batch(event={"epoch": ""}),
        batch(event={"boot": "b" * 65}),
        batch(event={"kind": "bogus"}),
        batch(event={"sensor": "s" * 65}),
        batch(event={"clock": "maybe"}),
        batch(event={"data": [1, 2]}),
        batch(event={"unknown": 1}),
        batch(drop=["ts"]),
        batch(drop=["id"]),
    ],
)
def test_the_dicts_refuse_what_the_models_refuse(bad: dict[str, Any]) -> None:
    raw = json.dumps(bad).encode()
    with pytest.raises(ValidationError):
        Batch.model_validate_json(raw)
    with pytest.raises(ValidationError):
        BATCH_DICT.validate_json(raw)


@pytest.mark.parametrize("optional_left_out", [False, True])
def test_the_dicts_keep_what_the_models_keep(optional_left_out: bool) -> None:
    good = batch(drop=["sensor", "mono", "data"]) if optional_left_out else batch()
    if optional_left_out:
        del good["schema"]
    raw = json.dumps(good).encode()
    model = Batch.model_validate_json(raw).model_dump(by_alias=True, exclude_unset=True)
    assert BATCH_DICT.validate_json(raw) == model
