"""Events per second from a private Mosquitto into PostgreSQL through ``edge-ingest serve``,
with one and with two processes on the shared subscription, against a bare COPY of the
same rows measured in the same run.

    .venv/bin/python bench/ingest_throughput.py [--events 200000] [--devices 50]
        [--url postgresql://postgres@127.0.0.1:5432/postgres]

Each round: a fresh, migrated database; a private Mosquitto; ``--processes`` real
``edge-ingest serve`` processes (one state directory, so their client ids take slots 0,
1, …); ``--devices`` publishers (one MQTT v5 connection each, QoS 1) sending the events
in messages of 100 readings of three quantities, as fast as the broker takes them.  The
clock runs from the first publish to the moment ``event_ids`` holds every event.  The
baseline is ``bench/ingest_store.py``'s: the ledger and reading rows, built beforehand,
COPY-ed straight into the tables (no broker, no decoding, no de-duplication).

Target (issue 13): >= 50,000 events/s with one process; two processes faster than one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
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
from tests.mosquitto import Mosquitto  # noqa: E402


def payloads(events: int, devices: int) -> dict[str, list[bytes]]:
    """Per device, its messages of 100 events, encoded as a device sends them."""
    out: dict[str, list[bytes]] = {}
    for work in make_works(events, devices, 100):
        for message in work.events:
            envelopes = [e.model_dump() for e in message.events]
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


def run_ingest(admin_url: str, messages: dict[str, list[bytes]], total: int, processes: int) -> float:
    with fresh_database(admin_url) as engine, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = engine.url.render_as_string(hide_password=False)
        with Mosquitto(folder / "broker") as broker:
            config = ingest_config(folder / "ingest", url, broker, state_dir=folder / "state")
            text = config.read_text().replace('log_level = "debug"', 'log_level = "info"')
            config.write_text(text)
            ingest = [IngestProcess(config, folder / f"ingest-{i}.log").start() for i in range(processes)]
            try:
                started = publish_all(broker.port, messages)
                while True:
                    with engine.connect() as conn:
                        stored = conn.execute(sa.text("SELECT count(*) FROM event_ids")).scalar_one()
                    if stored >= total:
                        break
                    if any(p.process is not None and p.process.poll() is not None for p in ingest):
                        raise SystemExit("an ingest process died:\n" + ingest[0].log[-3000:])
                    time.sleep(0.05)
                elapsed = time.perf_counter() - started
                with engine.connect() as conn:
                    readings = conn.execute(sa.text("SELECT count(*) FROM readings")).scalar_one()
                assert readings == 3 * total, (readings, total)
                return total / elapsed
            finally:
                for p in ingest:
                    p.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    total = args.events // 100 * 100
    messages = payloads(total, args.devices)
    with fresh_database(args.url) as engine:
        floor = baseline(engine, make_works(total, args.devices, 5000))
    print(f"{total:,} readings (3 quantities each) from {args.devices} devices, messages of 100 events")
    print(f"baseline: bare binary COPY of the same rows          {floor:>9,.0f} events/s")
    for n in (1, 2):
        rate = run_ingest(args.url, messages, total, n)
        print(f"edge-ingest serve x{n}, Mosquitto -> PostgreSQL       {rate:>9,.0f} events/s")


if __name__ == "__main__":
    main()
