"""Fleet load: N simulated devices against the real broker (Mosquitto on edge-auth's files,
mutual TLS) and the real ``edge-ingest serve``, then a broker restart they all come back
from at once.

    .venv/bin/python bench/fleet.py [--devices 1000] [--minutes 3] [--processes 4] [--outage 10]
                                    [--rate 1] [--commit-interval 1.5] [--no-herd] [--dir DIR]

The stack is ``make demo``'s (``demo/``) without its agents.  Each simulated device is
enrolled through the real flow (``POST /v1/devices``, then the agent's own
``edge_agent.identity.enroll.enroll``: its own key and certificate), and runs the agent's
own code, wired as the daemon wires it: its own ``edge_agent.outbox.Outbox`` with an
``OutboxWriter`` (the commit window and the deletes carried by appends of
``storage.commit_interval``, the agent's default (1.5 s), and the sampler's hand-over), and its own
``edge_agent.uplink.Forwarder`` (its own MQTT v5 connection, end-to-end delivery), N/P of
them on one asyncio loop in each of P processes.  Each appends one reading per 1/rate s.

The devices' disks are not what this measures: their outbox files are on a tmpfs
(``/dev/shm``, ``--outboxes``) at ``synchronous=OFF``; flash wear and power cuts have
benchmarks of their own (``flash_wear.py``, ``powercut_campaign.py``).  The ingest runs
with ``mqtt.receive_maximum`` 1,000 (``--receive-maximum``): at its default, 64, one-event
messages cap it near 1,000 messages/s (64 per commit cycle of ``batch_max_wait``).

Printed: events/s offered and stored; the cores each part used; end-to-end latency
p50/p99 (the reading's timestamp, when the sensor was read, to the ingest's
``received_at`` of its stored row); ingest CPU seconds per 1,000 events; the outboxes'
pending total and the ingest's consumer lag (``edge_ingest_pending_messages``); broker
and ingest RSS every 30 s (flat?); then the herd: the broker SIGKILLed for ``--outage``
seconds while the devices keep sampling, restarted, the time until every device is
connected again and every outbox is empty, with the broker's connections/s (peak, from
its log) and the connect count.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing as mp
import os
import random
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from demo.__main__ import Demo
from edge_agent.daemon.main import DELETE_WAIT
from edge_agent.events import NewEvent
from edge_agent.identity.enroll import enroll
from edge_agent.outbox import Outbox, OutboxWriter
from edge_agent.sampling.handover import HandOver
from edge_agent.settings import MQTTSettings, StorageSettings
from edge_agent.uplink import Forwarder
from edge_protocol.wire import boot_id

TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _busy(broker: int, workers: list[int]) -> tuple[float, float, float]:
    """CPU seconds so far: the whole machine (every process, other work too), the
    simulators, the broker."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    idle = int(fields[3]) + int(fields[4])
    machine = (sum(int(f) for f in fields[:8]) - idle) / TICK
    return machine, sum(_cpu_s(w) for w in workers), _cpu_s(broker)


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# -- one worker process: its share of the fleet on one asyncio loop ----------------------------


@dataclass
class _Shared:
    """What a worker reports to the bench (each a ``multiprocessing.Value``)."""

    pending: Any
    """Events committed and not yet confirmed, over the worker's outboxes (the lag)."""
    offered: Any
    """Readings handed to the outboxes so far."""
    connected: Any
    """Devices whose forwarder is connected now."""


@dataclass
class _Device:
    outbox: Outbox
    forwarder: Forwarder


async def _device(
    state: Path,
    outboxes: Path,
    rate: float,
    commit_interval: float,
    sampling: Any,
    stop: asyncio.Event,
    devices: dict[str, _Device],
    appended: list[int],
) -> None:
    device = state.name
    boot = boot_id()
    # As the daemon opens it (edge_agent/daemon/main.py), on a tmpfs by default: the
    # devices' disks are not what this measures (synchronous=OFF for the same reason).
    outbox = await Outbox.open(
        outboxes / device / "outbox.db",
        max_bytes=64 * 2**20,
        max_age_s=30 * 86400.0,
        boot=boot,
        pragmas={"synchronous": "OFF"},
        delete_window=DELETE_WAIT * commit_interval,  # as the daemon waits for a carrying append
        # The disk-full reserve (8 MiB by default) is RAM on a tmpfs: 5,000 of them ran
        # the machine out of memory.  1 MiB keeps the WAL checkpointed at 512 KiB.
        reserve_bytes=2**20,
    )
    writer = OutboxWriter(outbox, interval=commit_interval)
    writing = asyncio.create_task(writer.run())
    # The daemon's sampling hand-over: a reading does not wait for its commit window.
    emit = HandOver(writer.submit_or_drop) if commit_interval > 0 else writer.submit_or_drop
    ident = state / "identity"
    settings = MQTTSettings.model_validate(
        {
            "host": "127.0.0.1",
            "port": int((ident / "broker_port").read_text()),
            "tls": {
                "ca_file": ident / "ca.pem",
                "cert_file": ident / "device.pem",
                "key_file": ident / "device.key",
            },
            "delivery": "end-to-end",
            "ack_timeout": 30,
            "keepalive": 60,
            "reconnect_min": 0.5,
            "reconnect_max": 30,
        }
    )
    forwarder = Forwarder(outbox, settings, device_id=device, boot=boot)
    devices[device] = _Device(outbox, forwarder)
    task = asyncio.create_task(forwarder.run())
    await asyncio.sleep(random.uniform(0, 1 / rate))
    try:
        while not stop.is_set():
            if sampling.value:
                data = {"temperature_c": 20 + random.random(), "humidity_pct": 40 + random.random()}
                await emit(NewEvent.now("reading", "climate", data, boot=boot))
                appended[0] += 1
            await asyncio.sleep(1 / rate)
    finally:
        devices.pop(device, None)  # a device that died must not hold the drain wait
        await writer.stop()
        writing.cancel()
        await asyncio.gather(writing, return_exceptions=True)
        await forwarder.stop()
        await task
        await outbox.close()


def worker(
    states: list[Path],
    outboxes: Path,
    rate: float,
    commit_interval: float,
    sampling: Any,
    running: Any,
    shared: _Shared,
) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        devices: dict[str, _Device] = {}
        appended = [0]
        tasks = [
            asyncio.create_task(
                _device(s, outboxes, rate, commit_interval, sampling, stop, devices, appended)
            )
            for s in states
        ]
        while running.value:
            await asyncio.sleep(0.5)
            shared.pending.value = sum(d.outbox.pending_count for d in devices.values())
            shared.connected.value = sum(d.forwarder.stats.state == "connected" for d in devices.values())
            shared.offered.value = appended[0]
        stop.set()
        failed = [
            r for r in await asyncio.gather(*tasks, return_exceptions=True) if isinstance(r, BaseException)
        ]
        if failed:
            print(
                f"{len(failed)} simulated devices failed; the first: {failed[0]!r}",
                file=sys.stderr,
                flush=True,
            )

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # One line per device per reconnect would drown the figures; problems still show.
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main())


# -- the run -------------------------------------------------------------------------------------


def enroll_fleet(demo: Demo, token: str, root: Path, n: int) -> list[Path]:
    def one(i: int) -> Path:
        device = f"sim-{i:05d}"
        state = root / "fleet" / device
        if not (state / "identity" / "device.pem").exists():
            enrollment = demo.create_device(token, device)
            identity = enroll(state, auth_url=demo.auth_url, token=enrollment, device_id=device)
            (state / "identity" / "broker_port").write_text(str(identity.broker_port))
        return state

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


def _connects_per_s(log: Path, since: float) -> tuple[int, int]:
    """Peak connections in one second and their total, from Mosquitto's log after ``since``."""
    per: dict[int, int] = {}
    for line in log.read_text(errors="replace").splitlines():
        stamp, _, rest = line.partition(": ")
        if "New client connected" in rest and stamp.isdigit() and int(stamp) >= since:
            per[int(stamp)] = per.get(int(stamp), 0) + 1
    return (max(per.values()) if per else 0), sum(per.values())


def _latencies(db: Path, since: float, until: float) -> list[float]:
    out = []
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT r.ts, e.received_at FROM readings r JOIN event_ids e ON e.id = r.event_id"
        ).fetchall()
    for ts, received in rows:
        t0, t1 = (datetime.fromisoformat(str(v)).timestamp() for v in (ts, received))
        if since <= t0 <= until:
            out.append(t1 - t0)
    return out


def _ingest_lag(url: str) -> int:
    """The ingest's consumer lag: messages received and not yet committed and acknowledged."""
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return -1
    for line in text.splitlines():
        if line.startswith("edge_ingest_pending_messages "):
            return int(float(line.split()[1]))
    return -1


def _last_received(db: Path) -> float:
    with sqlite3.connect(db) as conn:
        (latest,) = conn.execute("SELECT max(received_at) FROM event_ids").fetchone()
    return datetime.fromisoformat(str(latest)).timestamp()


def _stored(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM event_ids").fetchone()[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=3)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--rate", type=float, default=1.0, help="events/s per device")
    parser.add_argument(
        "--commit-interval",
        type=float,
        default=StorageSettings.model_fields["commit_interval"].default,
        help="the devices' storage.commit_interval (default: the agent's; the commit window, deletes carried by appends)",
    )
    parser.add_argument(
        "--outboxes",
        type=Path,
        default=Path("/dev/shm") if Path("/dev/shm").is_dir() else None,
        help="where the devices' outbox files go (default: a tmpfs; the devices' disks are not measured)",
    )
    parser.add_argument(
        "--receive-maximum",
        type=int,
        default=1000,
        help="the ingest's mqtt.receive_maximum (its default, 64, caps it near 1,000 one-event messages/s)",
    )
    parser.add_argument("--outage", type=float, default=10, help="seconds the broker is down before the herd")
    parser.add_argument("--no-herd", action="store_true", help="the load only")
    parser.add_argument("--enroll-only", action="store_true", help="enroll the fleet into --dir, then stop")
    parser.add_argument("--dir", type=Path, default=None, help="keep the state here (enrollment is reused)")
    args = parser.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="fleet-"))
    outboxes = Path(tempfile.mkdtemp(prefix="fleet-outboxes-", dir=args.outboxes or root))
    os.environ["INGEST_MQTT__RECEIVE_MAXIMUM"] = str(args.receive_maximum)  # the ingest inherits it
    demo = Demo(root, int(os.environ.get("DEMO_PORT_BASE", "19000")))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        token = demo.start(agents=False)
        t = time.monotonic()
        states = enroll_fleet(demo, token, root, args.devices)
        print(f"{args.devices} devices enrolled in {time.monotonic() - t:.0f} s", flush=True)
        if args.enroll_only:
            return 0
        return _load(demo, states, outboxes, args)
    finally:
        demo.children.stop_all()
        shutil.rmtree(outboxes, ignore_errors=True)


def _load(demo: Demo, states: list[Path], outboxes: Path, args: argparse.Namespace) -> int:
    children = {c.name: c for c in demo.children.started}
    broker, ingest = children["mosquitto"], children["edge-ingest"]
    db = demo.root / "ingest" / "ingest.db"
    sampling, running = mp.Value("b", 1), mp.Value("b", 1)
    shared = [_Shared(mp.Value("q", 0), mp.Value("q", 0), mp.Value("q", 0)) for _ in range(args.processes)]
    procs = [
        mp.Process(
            target=worker,
            args=(
                states[i :: args.processes],
                outboxes,
                args.rate,
                args.commit_interval,
                sampling,
                running,
                shared[i],
            ),
        )
        for i in range(args.processes)
    ]

    def pending() -> int:
        return sum(w.pending.value for w in shared)

    def connected() -> int:
        return sum(w.connected.value for w in shared)

    for p in procs:
        p.start()
    try:
        t = time.monotonic()
        while connected() < len(states) and time.monotonic() - t < 120:
            time.sleep(1)
        print(f"{connected()} devices connected in {time.monotonic() - t:.0f} s", flush=True)
        time.sleep(10)  # every device sampling, the first backlog sent
        t0, wall0, cpu0, stored0 = time.monotonic(), time.time(), _cpu_s(ingest.process.pid), _stored(db)
        offered0, busy0 = (
            sum(w.offered.value for w in shared),
            _busy(broker.process.pid, [p.pid or 0 for p in procs]),
        )
        rss = [(0.0, _rss_mib(broker.process.pid), _rss_mib(ingest.process.pid))]
        lag: list[int] = []
        consumer: list[int] = []
        while time.monotonic() - t0 < args.minutes * 60:
            time.sleep(5)
            lag.append(pending())
            consumer.append(_ingest_lag(demo.ingest_url))
            if time.monotonic() - t0 >= rss[-1][0] + 30:
                rss.append(
                    (time.monotonic() - t0, _rss_mib(broker.process.pid), _rss_mib(ingest.process.pid))
                )
        t1, wall1, cpu1, stored1 = time.monotonic(), time.time(), _cpu_s(ingest.process.pid), _stored(db)
        offered1, busy1 = (
            sum(w.offered.value for w in shared),
            _busy(broker.process.pid, [p.pid or 0 for p in procs]),
        )
        span = t1 - t0
        print(
            f"offered {(offered1 - offered0) / span:.0f} events/s by the simulators; cores busy: "
            f"machine {(busy1[0] - busy0[0]) / span:.2f} of {os.cpu_count()}, simulators "
            f"{(busy1[1] - busy0[1]) / span:.2f}, broker {(busy1[2] - busy0[2]) / span:.2f}, "
            f"ingest {(cpu1 - cpu0) / span:.2f}; simulators' RSS {sum(_rss_mib(p.pid or 0) for p in procs):.0f} MiB",
            flush=True,
        )
        rss.append((span, _rss_mib(broker.process.pid), _rss_mib(ingest.process.pid)))
        events = stored1 - stored0
        lat = sorted(_latencies(db, wall0, wall1 - 5))
        print(
            f"load: {args.devices} devices x {args.rate:g} ev/s for {span:.0f} s: {events / span:.0f} events/s stored; "
            f"e2e latency p50 {statistics.median(lat) * 1000:.0f} ms, p99 {lat[int(len(lat) * 0.99)] * 1000:.0f} ms "
            f"({len(lat)} readings); ingest CPU {(cpu1 - cpu0) / max(events, 1) * 1000:.2f} s per 1,000 events; "
            f"outboxes' pending min {min(lag, default=0)} max {max(lag, default=0)} last {lag[-1] if lag else 0}; "
            f"ingest consumer lag (messages received, not yet committed) max {max(consumer, default=0)} "
            f"last {consumer[-1] if consumer else 0}",
            flush=True,
        )
        print(
            "RSS MiB (s: broker, ingest): " + ", ".join(f"{at:.0f}: {b:.0f}, {i:.0f}" for at, b, i in rss),
            flush=True,
        )
        if not args.no_herd:
            _herd(demo, broker, db, sampling, pending, connected, len(states), args.outage)
    finally:
        running.value = 0
        for p in procs:
            p.join(60)
            if p.is_alive():
                p.kill()
    return 0


def _herd(
    demo: Demo,
    broker: Any,
    db: Path,
    sampling: Any,
    pending: Callable[[], int],
    connected: Callable[[], int],
    n: int,
    outage: float,
) -> None:
    """The broker dies, the devices buffer, the broker comes back: until every outbox is empty."""
    broker.process.kill()
    broker.process.wait()
    time.sleep(outage)
    sampling.value = 0
    time.sleep(1.5)  # the last readings committed (commit window) and counted
    backlog = pending()
    since = time.time()
    restarted = demo.children.start("mosquitto", broker.process.args)
    (demo.root / "mosquitto.pid").write_text(f"{restarted.process.pid}\n")
    h0 = time.monotonic()
    log = demo.root / "mosquitto" / "mosquitto.log"
    back = drained = None
    while time.monotonic() - h0 < 180:
        time.sleep(0.5)
        if back is None and connected() >= n:
            back = time.monotonic() - h0
        if back is not None and pending() == 0:
            drained = time.monotonic() - h0
            break
    peak, total = _connects_per_s(log, since)
    print(
        f"herd: broker down {outage:g} s, {backlog} events buffered; "
        + (f"all {n} back in {back:.1f} s" if back is not None else f"{connected()} of {n} back after 180 s")
        + ", "
        + (
            f"every outbox empty {drained:.1f} s"
            if drained is not None
            else f"{pending()} events still pending 180 s"
        )
        + f" after the restart (last row stored {_last_received(db) - since:.1f} s after it); "
        f"broker connections: {total} in all, peak {peak}/s, mean {total / max(back or 180, 1):.0f}/s",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
