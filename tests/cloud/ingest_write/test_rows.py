"""An envelope's reading rows, and what is refused event by event (pure: no database)."""

from __future__ import annotations

import gc
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from edge_cloud.ingest.serve import GC_GEN0_THRESHOLD, tune_gc
from edge_cloud.ingest.store.rows import EventRefused, event_rows
from edge_protocol.wire import ENVELOPE_DICT, CalibrationChanged, EnvelopeDict
from tests.cloud.ingest_write.helpers import Device

AT = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)


def reading(data: dict[str, Any]) -> EnvelopeDict:
    return ENVELOPE_DICT.validate_python(Device("site-1").event(data=data))


def test_reading_values_become_floats_in_column_order_one_row_per_quantity() -> None:
    env = reading({"temperature_c": 19.5, "count": 3, "cal": {"temperature_c": 7}})
    rows = event_rows("site-1", env, AT)
    assert rows.table == "readings" and rows.rows == ()
    assert rows.key == ("site-1", env["id"])
    assert rows.ledger == ("site-1", env["id"], env["epoch"], 1, "reading", AT)
    ts = datetime.fromisoformat(env["ts"]).astimezone(UTC)
    assert rows.readings == (
        ("climate", "temperature_c", ts, 19.5, env["id"], True, 7),
        ("climate", "count", ts, 3.0, env["id"], True, None),
    )
    assert type(rows.readings[1][3]) is float


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (math.nan, "is not finite"),
        (math.inf, "is not finite"),
        (-math.inf, "is not finite"),
        (10**400, "is not finite"),
        (True, "is not a number"),
        ("19.5", "is not a number"),
        (None, "is not a number"),
    ],
)
def test_a_reading_value_that_is_no_finite_number_refuses_the_event(value: object, problem: str) -> None:
    with pytest.raises(EventRefused, match=problem):
        event_rows("site-1", reading({"temperature_c": 19.5, "x": value}), AT)


def test_a_quantity_name_that_cannot_be_stored_refuses_the_event() -> None:
    for name, problem in (("q" * 65, "longer than 64"), ("a\x00b", "NUL"), ("", "is empty")):
        with pytest.raises(EventRefused, match=problem):
            event_rows("site-1", reading({name: 1.0}), AT)


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_gc")
def test_serve_collects_cycles_less_often_and_leaves_what_it_loaded_out() -> None:
    gc.set_threshold(700, 10, 10)
    tune_gc()
    assert gc.get_threshold() == (GC_GEN0_THRESHOLD, 10, 10)
    assert gc.get_freeze_count() > 0


def test_a_readings_rows_leave_the_garbage_collectors_view_once_it_has_seen_them() -> None:
    # The consumer holds a hundred thousand events between decoding and commit: their rows
    # are plain tuples of plain values, which the collector stops tracking at its first
    # looks (all but the EventRows itself: CPython untracks only exact tuples, a tuple of
    # tuples once those are untracked).
    rows = event_rows("site-1", reading({"temperature_c": 19.5, "cal": {"temperature_c": 7}}), AT)
    gc.collect()
    gc.collect()
    assert not any(gc.is_tracked(r) for r in (rows.key, rows.ledger, rows.readings, *rows.readings))


def test_a_calibration_changed_status_with_its_uncertainty_is_stored_whole() -> None:
    data: CalibrationChanged = {
        "event": "calibration_changed",
        "quantity": "temperature_c",
        "action": "calibrate",
        "cal": 3,
        "gain": 0.99,
        "offset": -0.2,
        "calibrated_at": 1_700_000_000.0,
        "expires_at": 1_715_552_000.0,
        "uncertainty": 0.12,
    }
    env = ENVELOPE_DICT.validate_python(Device("site-1").event("status", dict(data)))
    (row,) = event_rows("site-1", env, AT).rows
    assert row["event"] == "calibration_changed" and row["data"]["uncertainty"] == 0.12
    assert row["data"] == data
