"""Events per second from a private Mosquitto into PostgreSQL through ``edge-ingest serve``,
with one and with two processes on the shared subscription, against a bare COPY of the
same rows measured in the same run.

    .venv/bin/python bench/ingest_throughput.py [--events 200000] [--devices 50]
        [--receive-maximum 256] [--batch 5000] [--url postgresql://postgres@127.0.0.1:5432/postgres]

Each round: a fresh, migrated database; a private Mosquitto; one or two real
``edge-ingest serve`` processes (one state directory, so their client ids take slots 0,
1, …); ``--devices`` publishers (one MQTT v5 connection each, QoS 1) sending the events
in messages of 100 readings of three quantities, as fast as the broker takes them.

- *live*: the clock runs from the first publish to the moment ``event_ids`` holds every
  event, the publishers running on the same two cores as the ingest;
- *queued backlog* (the ingest back from an outage): the processes subscribe, stop, the
  events are published into their sessions, they start again; the clock runs from the
  first commit to the last, so the simulated fleet's CPU is not counted.

Each line also gives the ingest processes' own CPU per event stored (user + system seconds
from ``/proc/PID/stat`` over the clocked interval, divided by the events stored in it): the
figure a shared, noisy machine distorts least.  And how much of the time each process's writing thread spent in
transactions (``edge_ingest_batch_commit_seconds_sum`` over the elapsed time): near 100 %,
the database transaction is what limits it.  The baseline is ``bench/ingest_store.py``'s:
the ledger and reading rows, built beforehand, COPY-ed straight into the tables (no
broker, no decoding, no de-duplication).  An event is four rows: its ledger row and three
readings.

Target (issue 13): >= 50,000 events/s with one process; two processes faster than one.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import paho.mqtt.client as mqtt  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from ingest_store import baseline, fresh_database, make_works  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from edge_protocol.wire import encode_batch, events_topic  # noqa: E402
from tests.cloud.ingest_write.processes import IngestProcess, ingest_config  # noqa: E402
from tests.mosquitto import Mosquitto, free_port  # noqa: E402


def payloads(events: int, devices: int) -> dict[str, list[bytes]]:
    """Per device, its messages of 100 events, encoded as a device sends them."""
    out: dict[str, list[bytes]] = {}
    for work in make_works(events, devices, 100):
        for message in work.events:
            envelopes = [dict(e) for e in message.events]
            out.setdefault(message.device_id, []).append(encode_batch(message.device_id, envelopes))
    return out


def publish_all(port: int, messages: dict[str, list[bytes]]) -> float:
    """Every device's messages at QoS 1 from its own connection; the time the first left."""
    clients = []
    for device in messages:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device, protocol=mqtt.MQTTv5)
        c.max_inflight_messages_set(20)
        c.connect("127.0.0.1", port, clean_start=True)
        c.loop_start()
        clients.append((c, device))
    started = time.perf_counter()

    def send(c: mqtt.Client, device: str) -> None:
        infos = [c.publish(events_topic(device), p, qos=1) for p in messages[device]]
        for info in infos:
            info.wait_for_publish(120)

    threads = [threading.Thread(target=send, args=pair) for pair in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c, _ in clients:
        c.disconnect()
        c.loop_stop()
    return started


def commit_seconds(process: IngestProcess) -> float:
    """The time its writing thread spent in transactions (``/metrics``)."""
    port = re.search(r"\[server\]\nport = (\d+)", process.config.read_text())
    assert port is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{port.group(1)}/metrics", timeout=10) as r:
        text = r.read().decode()
    found = re.search(r"^edge_ingest_batch_commit_seconds_sum (\S+)$", text, re.M)
    assert found is not None
    return float(found.group(1))


def cpu_seconds(process: IngestProcess) -> float:
    """User + system CPU of the process so far (``/proc/PID/stat``, fields 14 and 15)."""
    assert process.process is not None
    stat = Path(f"/proc/{process.process.pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(process: IngestProcess) -> None:
    """Start it on an HTTP port free now (the publishers' connections take ephemeral ports)."""
    text = re.sub(r"\[server\]\nport = \d+", f"[server]\nport = {free_port()}", process.config.read_text())
    process.config.write_text(text)
    process.start()


def run_ingest(
    admin_url: str,
    messages: dict[str, list[bytes]],
    total: int,
    processes: int,
    *,
    backlog: bool,
    receive_maximum: int,
    batch: int,
) -> tuple[float, list[float], float]:
    """Events/s, the writers' share of time in transactions, and the processes' CPU µs per
    event stored, of ``processes`` ingest processes.  Live: from the first publish to the last
    commit, the publishers running beside the ingest.  Backlog: the messages queued first in
    the processes' sessions (as after an ingest outage), then from the first commit to the
    last, so the simulated fleet's CPU is not counted against the ingest's."""
    with fresh_database(admin_url) as engine, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = engine.url.render_as_string(hide_password=False)

        def stored() -> int:
            with engine.connect() as conn:
                return int(conn.execute(sa.text("SELECT count(*) FROM event_ids")).scalar_one())

        with Mosquitto(folder / "broker") as broker:
            ingest = []
            for i in range(processes):  # one state folder: client ids take slots 0, 1, …; one HTTP port each
                config = ingest_config(
                    folder / f"ingest-{i}",
                    url,
                    broker,
                    state_dir=folder / "state",
                    receive_maximum=receive_maximum,
                    batch_max_events=batch,
                )
                config.write_text(config.read_text().replace('log_level = "debug"', 'log_level = "info"'))
                ingest.append(IngestProcess(config, folder / f"ingest-{i}.log"))
            try:
                for p in ingest:
                    start(p)
                if backlog:
                    for p in ingest:  # their sessions stay, and queue their shares
                        p.stop()
                    publish_all(broker.port, messages)
                    for p in ingest:
                        start(p)
                    while (first := stored()) == 0:
                        time.sleep(0.01)
                    started = time.perf_counter()
                    cpu0 = sum(cpu_seconds(p) for p in ingest)
                else:
                    first = 0
                    cpu0 = sum(cpu_seconds(p) for p in ingest)
                    started = publish_all(broker.port, messages)
                while stored() < total:
                    if any(p.process is not None and p.process.poll() is not None for p in ingest):
                        raise SystemExit("an ingest process died:\n" + ingest[0].log[-3000:])
                    time.sleep(0.02)
                elapsed = time.perf_counter() - started
                cpu = sum(cpu_seconds(p) for p in ingest) - cpu0
                busy = [commit_seconds(p) / elapsed for p in ingest]
                with engine.connect() as conn:
                    readings = conn.execute(sa.text("SELECT count(*) FROM readings")).scalar_one()
                assert readings == 3 * total, (readings, total)
                return (total - first) / elapsed, busy, cpu / (total - first) * 1e6
            finally:
                for p in ingest:
                    p.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument(
        "--receive-maximum", type=int, default=256, help="mqtt.receive_maximum of each process"
    )
    parser.add_argument("--batch", type=int, default=5000, help="consumer.batch_max_events of each process")
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    total = args.events // 100 * 100
    messages = payloads(total, args.devices)
    with fresh_database(args.url) as engine:
        floor = baseline(engine, make_works(total, args.devices, args.batch))
    print(f"{total:,} readings (3 quantities each) from {args.devices} devices, messages of 100 events")
    print(
        f"baseline: bare binary COPY of the same rows          {floor:>9,.0f} events/s  ({4 * floor:,.0f} rows/s)"
    )
    for backlog in (False, True):
        for n in (1, 2):
            rate, busy, cpu = run_ingest(
                args.url,
                messages,
                total,
                n,
                backlog=backlog,
                receive_maximum=args.receive_maximum,
                batch=args.batch,
            )
            what = "a queued backlog" if backlog else "live publishers "
            in_tx = ", ".join(f"{b:.0%}" for b in busy)
            print(
                f"edge-ingest serve x{n}, {what} -> PostgreSQL  {rate:>9,.0f} events/s"
                f"  {cpu:5.1f} µs CPU/event  (writer in transactions {in_tx} of the time)"
            )


if __name__ == "__main__":
    main()
