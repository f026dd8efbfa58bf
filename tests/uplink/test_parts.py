"""The uplink's small parts, without a broker: batches, lanes, token bucket, backoff, acks, logging."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

from edge_agent.events import StoredEvent
from edge_agent.settings import MQTTSettings
from edge_agent.uplink import Forwarder
from edge_agent.uplink.acks import parse_ack
from edge_agent.uplink.backoff import FullJitter
from edge_agent.uplink.lanes import LaneReader, TokenBucket, cut_batch
from edge_agent.uplink.problems import ProblemSeries
from edge_protocol.wire import encode_batch
from tests.uplink.helpers import event, readings
from tests.uplink.memory_outbox import MemoryOutbox


def stored(seq: int, size: int) -> StoredEvent:
    return StoredEvent(seq=seq, kind="reading", body=f'{{"seq":{seq}}}', size=size)


def test_cut_batch_respects_count_and_bytes_and_lets_a_giant_go_alone() -> None:
    events = [stored(i, 100) for i in range(1, 11)]
    assert cut_batch(events, 0, max_events=4, max_bytes=10_000, overhead=50) == 4
    # 50 + 100 + 101 + 101 = 352 <= 360; one more would be 453.
    assert cut_batch(events, 4, max_events=100, max_bytes=360, overhead=50) == 7
    assert cut_batch(events, 7, max_events=100, max_bytes=10_000, overhead=50) == 10
    assert cut_batch(events, 10, max_events=100, max_bytes=10_000, overhead=50) == 10
    giant = [stored(1, 5000), stored(2, 10)]
    assert cut_batch(giant, 0, max_events=10, max_bytes=1024, overhead=50) == 1
    assert cut_batch(giant, 1, max_events=10, max_bytes=1024, overhead=50) == 2


def test_token_bucket_refills_at_its_rate_up_to_capacity() -> None:
    now = [0.0]
    bucket = TokenBucket(100.0, 200.0, clock=lambda: now[0], initial=50)
    assert bucket.available() == 50
    bucket.take(50)
    assert bucket.seconds_until(100) == pytest.approx(1.0)
    now[0] = 0.5
    assert bucket.available() == pytest.approx(50)
    now[0] = 100.0
    assert bucket.available() == 200


def test_full_jitter_stays_in_a_doubling_window_and_varies() -> None:
    backoff = FullJitter(1.0, 30.0, random.Random(7))
    assert [backoff.window(n) for n in (1, 2, 3, 4, 5, 6, 100)] == [2, 4, 8, 16, 30, 30, 30]
    delays = [backoff.delay(5) for _ in range(200)]
    assert min(delays) >= 1.0 and max(delays) <= 30.0
    assert max(delays) - min(delays) > 20, "spread over the window, not one value"
    with pytest.raises(ValueError):
        FullJitter(0, 10)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"null",
        b"{}",
        b'{"epoch": "e"}',
        b'{"epoch": "e", "seqs": [[0, 3]]}',
        b'{"epoch": "e", "seqs": [[4, 3]]}',
        b'{"epoch": "e", "seqs": [["a", 3]]}',
        b'{"epoch": 5, "seqs": []}',
        b"x" * (1 << 21),
    ],
)
def test_malformed_acks_are_value_errors(payload: bytes) -> None:
    with pytest.raises(ValueError):
        parse_ack(payload)


def test_a_good_ack_parses() -> None:
    ack = parse_ack(b'{"epoch": "e1", "seqs": [[1, 3], [7, 7]]}')
    assert ack.epoch == "e1" and ack.seqs == [(1, 3), (7, 7)]


def test_problem_series_logs_once_per_kind_and_once_on_recovery(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="t")
    series = ProblemSeries(logging.getLogger("t"), "cannot connect")
    for _ in range(5):
        series.failed(ConnectionRefusedError("refused"))
    series.failed(TimeoutError("timed out"))
    series.failed(TimeoutError("timed out"))
    series.recovered("connected")
    series.recovered("connected")
    levels = [(r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= logging.INFO]
    assert levels == [
        ("WARNING", "cannot connect: refused"),
        ("WARNING", "cannot connect: timed out"),
        ("INFO", "connected after 7 failed attempts over 0 s (last: timed out)"),
    ]


def test_lane_reader_reads_in_order_skips_and_knows_when_it_is_empty() -> None:
    async def main() -> None:
        outbox = MemoryOutbox()
        outbox.append_now([*readings(5), event("alarm"), *readings(5, 5)])
        fetches = 0
        real_fetch = outbox.fetch

        async def counting_fetch(*args, **kwargs):  # type: ignore[no-untyped-def]
            nonlocal fetches
            fetches += 1
            return await real_fetch(*args, **kwargs)

        outbox.fetch = counting_fetch  # type: ignore[method-assign]
        backlog = LaneReader(outbox, "backlog", before_seq=9, prefetch=4, skip=lambda s: s == 2, skip_below=3)
        mark = outbox.next_seq
        got: list[int] = []
        while batch := await backlog.next_batch(mark, max_events=3, max_bytes=10_000, overhead=40):
            got += [e.seq for e in batch]
        assert got == [1, 3, 4, 5, 7, 8], "readings before seq 9, alarm (6) and the skipped 2 left out"
        assert backlog.exhausted(mark)
        before = fetches
        assert await backlog.next_batch(mark, max_events=3, max_bytes=10_000, overhead=40) == []
        assert fetches == before, "a lane known empty costs no query"
        outbox.append_now(readings(1))
        assert await backlog.next_batch(outbox.next_seq, max_events=3, max_bytes=9999, overhead=0) == []
        assert backlog.exhausted(outbox.next_seq)
        assert fetches == before, "a commit past before_seq costs a bounded lane no query"
        backlog.forget_empty()
        assert await backlog.next_batch(outbox.next_seq, max_events=3, max_bytes=9999, overhead=0) == []
        assert fetches == before, "nor the idle recheck: nothing can ever come below its bound"
        early = LaneReader(outbox, "backlog", before_seq=99, prefetch=100)
        assert len(await early.next_batch(outbox.next_seq, max_events=99, max_bytes=99_999, overhead=0)) == 11
        outbox.append_now(readings(1))
        assert not early.exhausted(outbox.next_seq), "its bound was not yet committed: it looks again"
        assert [
            e.seq for e in await early.next_batch(outbox.next_seq, max_events=9, max_bytes=9999, overhead=0)
        ] == [13]
        priority = LaneReader(outbox, "priority")
        assert [e.seq for e in await priority.next_batch(mark, max_events=9, max_bytes=9999, overhead=0)] == [
            6
        ]

    asyncio.run(main())


@pytest.mark.parametrize("compression", ["none", "zlib"])
def test_payload_from_stored_bodies_is_byte_identical_to_encode_batch(compression: str) -> None:
    outbox = MemoryOutbox()
    stored_events = outbox.append_now(
        [event("reading", 1), event("alarm", 2, sensor="é-sensor"), *readings(3)]
    )
    fwd = Forwarder(outbox, MQTTSettings(compression=compression), device_id="dév-1", boot="b")  # type: ignore[arg-type]
    expected = encode_batch("dév-1", [e.envelope for e in stored_events], compression)  # type: ignore[arg-type]
    assert fwd._payload(stored_events) == expected
