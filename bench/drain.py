"""Drain of a pre-filled outbox to a private local Mosquitto at QoS 1, with its baseline.

    .venv/bin/python bench/drain.py [--events 1000000] [--outbox sqlite|memory] [--quick]

Figures, all measured in this run, on this machine:

* ``Forwarder`` (edge_agent.uplink): the outbox (the real SQLite ``edge_agent.outbox`` by
  default, or the uplink tests' in-memory double with ``--outbox memory``) pre-filled with
  N readings (an alarm every 1,000), drained in ``broker`` delivery mode: batches of 100
  events, 4 batches in flight, QoS 1, each batch deleted from the outbox on its PUBACK.
  The backlog rate limit (``mqtt.backlog_rate``, 2,000 events/s by default, there to
  protect a broker from a fleet coming back) is lifted to measure the pipeline itself.
  Wall time runs from ``Forwarder.run()`` until the subscriber has counted every event
  and the outbox is empty.
* baseline: a bare paho-mqtt loop publishing one event per message at QoS 1 (the same
  envelopes, pre-encoded; at most 100 unacknowledged, so paho's queue and its 16-bit
  message ids stay sane), over ``--baseline-events`` events (default min(N, 100,000)).

A subscriber in a separate process counts the events it receives at QoS 1 (occurrences of
``"seq":`` in each payload, so counting costs it almost nothing on a 2-core machine).
Target (issue 3): 1,000,000 events in under 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import resource
import sys
import tempfile
import threading
import time
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.events import NewEvent
from edge_agent.settings import MQTTSettings
from edge_agent.uplink import Forwarder
from edge_protocol.wire import boot_id, encode_batch

DEVICE = "bench-device"
BOOT = boot_id()
SENSORS = ["climate", "air", "soil", "water", "gps"]
TARGET_S = 10.0


# -- the counting subscriber (its own process) ---------------------------------------------


def subscriber(
    port: int, topic: str, expected: int, ready: MpEvent, done: MpEvent, count: Any, at: Any
) -> None:
    seen = 0

    def on_message(c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        nonlocal seen
        seen += msg.payload.count(b'"seq":')
        if seen >= expected and not done.is_set():
            at.value = time.monotonic()
            count.value = seen
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"counter-{topic}", protocol=mqtt.MQTTv5)
    client.on_message = on_message
    client.on_subscribe = lambda *a: ready.set()
    client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
    client.connect("127.0.0.1", port)
    client.loop_start()
    done.wait()
    time.sleep(0.2)
    client.disconnect()
    client.loop_stop()


class Counter:
    def __init__(self, port: int, topic: str, expected: int) -> None:
        ctx = mp.get_context("fork")
        self.ready, self.done = ctx.Event(), ctx.Event()
        self.count: Synchronized[int] = ctx.Value("q", 0)
        self.at: Synchronized[float] = ctx.Value("d", 0.0)
        self.proc = ctx.Process(
            target=subscriber, args=(port, topic, expected, self.ready, self.done, self.count, self.at)
        )
        self.proc.start()
        if not self.ready.wait(10):
            raise RuntimeError("the counting subscriber did not subscribe")

    def close(self) -> None:
        self.done.set()
        self.proc.join(5)


# -- events ------------------------------------------------------------------------------------


def make_events(n: int) -> list[NewEvent]:
    wall, mono = time.time() - n * 0.001, time.monotonic()
    out = []
    for i in range(n):
        if i % 1000 == 999:
            out.append(NewEvent.now("alarm", "climate", {"over": "temperature", "value": 41.2}, boot=BOOT))
            continue
        data = {"temperature": 21.0 + (i % 100) / 37, "humidity": 40.0 + (i % 50) / 7, "pressure": 1013.25}
        out.append(
            NewEvent.now(
                "reading", SENSORS[i % 5], data, boot=BOOT, wall=wall + i * 0.001, mono=mono + i * 0.001
            )
        )
    return out


async def fill(kind: str, directory: Path, n: int) -> Any:
    chunk = 20_000
    if kind == "memory":
        from tests.uplink.memory_outbox import MemoryOutbox

        outbox: Any = MemoryOutbox()
    else:
        from edge_agent.outbox import Outbox

        outbox = await Outbox.open(
            directory / "outbox.db", max_bytes=2**40, max_age_s=365 * 86400.0, boot=BOOT
        )
    for start in range(0, n, chunk):
        await outbox.append(make_events(min(chunk, n - start)))
    return outbox


# -- the runs ----------------------------------------------------------------------------------


async def drain(args: argparse.Namespace, port: int, directory: Path) -> dict[str, float]:
    t = time.perf_counter()
    outbox = await fill(args.outbox, directory, args.events)
    fill_s = time.perf_counter() - t
    counter = Counter(port, f"devices/{DEVICE}/events", args.events)
    settings = MQTTSettings(
        host="127.0.0.1",
        port=port,
        batch_max_events=args.batch,
        inflight_batches=args.inflight,
        compression=args.compression,
        backlog_rate=1e12,
    )
    fwd = Forwarder(outbox, settings, device_id=DEVICE, boot=BOOT)
    sample = await outbox.fetch("readings", limit=1)
    passthrough = bool(sample) and isinstance(getattr(sample[0], "body", None), str)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.monotonic()
    task = asyncio.create_task(fwd.run())
    try:
        while not (counter.done.is_set() and outbox.pending_count == 0):
            if task.done():
                task.result()
                raise RuntimeError("the forwarder stopped")
            await asyncio.sleep(0.005)
        end = max(time.monotonic(), counter.at.value)
    finally:
        await fwd.stop()
        await task
        counter.close()
        if hasattr(outbox, "close"):
            await outbox.close()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {
        "fill_s": fill_s,
        "wall_s": end - start,
        "cpu_s": cpu,
        "messages": fwd.stats.published_batches,
        "bytes": fwd.stats.published_bytes,
        "counted": counter.count.value,
        "passthrough": passthrough,
    }


def bare_paho(port: int, n: int, inflight: int = 100) -> dict[str, float]:
    events = make_events(n)
    payloads = [encode_batch(DEVICE, [_envelope(e, i + 1)]) for i, e in enumerate(events)]
    counter = Counter(port, "bench/bare", n)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bare-paho", protocol=mqtt.MQTTv5)
    client.max_inflight_messages = inflight
    window = threading.Semaphore(inflight)
    client.on_publish = lambda *a: window.release()
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        start = time.monotonic()
        for payload in payloads:
            window.acquire()
            client.publish("bench/bare", payload, qos=1)
        counter.done.wait(600)
        end = max(time.monotonic(), counter.at.value)
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        client.disconnect()
        client.loop_stop()
        counter.close()
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {"wall_s": end - start, "cpu_s": cpu, "counted": counter.count.value}


def _envelope(e: NewEvent, seq: int) -> dict[str, Any]:
    return {
        "id": e.id,
        "seq": seq,
        "epoch": "bench",
        "boot": e.boot,
        "kind": e.kind,
        "sensor": e.sensor,
        "ts": e.ts,
        "clock": e.clock,
        "mono": e.mono,
        "data": e.data,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--outbox", choices=["sqlite", "memory"], default="sqlite")
    parser.add_argument("--batch", type=int, default=100, help="batch_max_events")
    parser.add_argument("--inflight", type=int, default=4, help="inflight_batches")
    parser.add_argument("--compression", choices=["none", "zlib"], default="none")
    parser.add_argument("--baseline-events", type=int, default=None)
    parser.add_argument("--dir", type=Path, default=None, help="where the outbox file goes (default: ./)")
    parser.add_argument("--quick", action="store_true", help="--events 100000 --baseline-events 20000")
    args = parser.parse_args()
    if args.quick:
        args.events, args.baseline_events = 100_000, args.baseline_events or 20_000
    baseline_n = args.baseline_events or min(args.events, 100_000)

    from tests.mosquitto import Mosquitto

    with tempfile.TemporaryDirectory(prefix="bench-drain-", dir=args.dir or Path.cwd()) as tmp:
        directory = Path(tmp)
        with Mosquitto(directory / "broker") as broker:
            ours = asyncio.run(drain(args, broker.port, directory))
            bare = bare_paho(broker.port, baseline_n)

    n = args.events
    rate = n / ours["wall_s"]
    bare_rate = baseline_n / bare["wall_s"]
    outbox_label = "edge_agent.outbox (SQLite)" if args.outbox == "sqlite" else "in-memory test double"
    print(
        f"Drain of a {n:,}-event backlog to a local Mosquitto at QoS 1 (subscriber counting, separate process)"
    )
    print(f"  outbox: {outbox_label}, pre-filled in {ours['fill_s']:.1f} s (not timed)")
    how = "joined as stored" if ours["passthrough"] else "decoded by the outbox, encoded again by the uplink"
    print(f"  envelopes: {how}")
    print(
        f"  settings: delivery=broker, batch_max_events={args.batch}, inflight_batches={args.inflight}, "
        f"compression={args.compression}, backlog rate limit lifted"
    )
    print()
    print(f"  {'':34} {'events':>10} {'wall s':>8} {'events/s':>10} {'CPU s':>7} {'messages':>9}")
    print(
        f"  {'edge-agent Forwarder':34} {n:>10,} {ours['wall_s']:>8.2f} {rate:>10,.0f} "
        f"{ours['cpu_s']:>7.1f} {int(ours['messages']):>9,}"
    )
    print(
        f"  {'baseline: bare paho, 1 event/msg':34} {baseline_n:>10,} {bare['wall_s']:>8.2f} "
        f"{bare_rate:>10,.0f} {bare['cpu_s']:>7.1f} {baseline_n:>9,}"
    )
    print()
    print(f"  forwarder vs bare paho loop: {rate / bare_rate:.1f}x the events/s")
    print(f"  bare paho at that rate would need {n / bare_rate:.1f} s for {n:,} events")
    print(f"  payload bytes/event on the wire: {ours['bytes'] / n:.0f}")
    if n >= 1_000_000:
        verdict = "meets" if ours["wall_s"] < TARGET_S else "MISSES"
        print(f"  target: {n:,} events in < {TARGET_S:.0f} s -> {verdict} it ({ours['wall_s']:.1f} s)")
    else:
        print(f"  target (1,000,000 in < {TARGET_S:.0f} s) extrapolated: {1_000_000 / rate:.1f} s")


if __name__ == "__main__":
    main()
