"""Bytes on the wire per event, plain and zlib, for typical readings, with baselines.

    .venv/bin/python bench/wire_bytes.py [--events 5000]

The real ``Forwarder`` publishes N typical readings to a private Mosquitto through a small
TCP relay that counts every byte in each direction (MQTT over TCP, without the TCP/IP
headers).  A session that publishes nothing is measured first (CONNECT, birth and offline
status, DISCONNECT) and subtracted, so the figures are what the events cost.

Readings are synthetic but shaped like the five simulated sensors of the default config
(climate BME280, cabinet SHT3x, analog ADS1115, dust PMS5003, gps NMEA), values varying
the way the drivers report them.  Baselines in the same run: the envelope's JSON size
(what the outbox stores), and one event per message (batch of 1), what a naive
publisher sends.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge_agent.events import NewEvent
from edge_agent.settings import MQTTSettings
from edge_agent.uplink import Forwarder
from edge_protocol.wire import boot_id
from tests.uplink.memory_outbox import MemoryOutbox

DEVICE = "site-042-gw"
BOOT = boot_id()


def typical_readings(n: int, seed: int = 1) -> list[NewEvent]:
    rng = random.Random(seed)
    wall, mono = time.time() - n, time.monotonic()
    t, rh, p = 19.5, 42.0, 101_200.0
    out = []
    for i in range(n):
        t += rng.uniform(-0.05, 0.05)
        rh += rng.uniform(-0.2, 0.2)
        p += rng.uniform(-3, 3)
        sensor, data = [
            (
                "climate",
                {
                    "temperature_c": round(t, 2),
                    "pressure_pa": round(p * 256) / 256,
                    "relative_humidity_pct": round(rh * 1024) / 1024,
                },
            ),
            (
                "cabinet",
                {
                    "temperature_c": t + 2.6 + rng.random() / 7,
                    "relative_humidity_pct": rh + 6 + rng.random() / 3,
                },
            ),
            (
                "analog",
                {
                    "ain0_voltage_v": rng.randrange(17000, 18000) * 0.000125,
                    "ain1_voltage_v": rng.randrange(13000, 13500) * 0.000125,
                    "ain2_voltage_v": rng.randrange(23000, 24000) * 0.000125,
                    "ain3_voltage_v": rng.randrange(-4, 4) * 0.000125,
                    "water_level_m": rng.uniform(3.2, 3.4),
                },
            ),
            (
                "dust",
                {
                    k: float(rng.randrange(lo, hi))
                    for k, lo, hi in [
                        ("pm1_0_ugm3", 4, 9),
                        ("pm2_5_ugm3", 8, 14),
                        ("pm10_ugm3", 10, 18),
                        ("pm1_0_cf1_ugm3", 4, 9),
                        ("pm2_5_cf1_ugm3", 8, 14),
                        ("pm10_cf1_ugm3", 10, 18),
                        ("particles_0_3um_per_dl", 1000, 1400),
                        ("particles_0_5um_per_dl", 300, 420),
                        ("particles_1_0um_per_dl", 60, 100),
                        ("particles_2_5um_per_dl", 8, 20),
                        ("particles_5_0um_per_dl", 1, 6),
                        ("particles_10um_per_dl", 0, 3),
                    ]
                },
            ),
            (
                "gps",
                {
                    "fix_quality": 1.0,
                    "satellites_count": float(rng.randrange(7, 12)),
                    "hdop": round(rng.uniform(0.8, 1.2), 2),
                    "latitude_deg": 52.5163 + rng.uniform(-1e-5, 1e-5),
                    "longitude_deg": 13.3777 + rng.uniform(-1e-5, 1e-5),
                    "altitude_m": round(rng.uniform(33, 34), 1),
                    "speed_mps": 0.0,
                    "course_deg": round(rng.uniform(0, 360), 2),
                    "gps_time_unix_s": float(int(wall + i)),
                },
            ),
        ][i % 5]
        out.append(NewEvent.now("reading", sensor, data, boot=BOOT, wall=wall + i, mono=mono + i))
    return out


class Relay:
    """A TCP relay in front of the broker that counts the bytes each way."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.up = 0
        self.down = 0
        self.open_sessions = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_sessions += 1
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, up: bool) -> None:
            try:
                while data := await src.read(65536):
                    if up:
                        self.up += len(data)
                    else:
                        self.down += len(data)
                    dst.write(data)
                    await dst.drain()
            except ConnectionError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_w, True), pipe(up_r, writer, False))
        self.open_sessions -= 1

    def reset(self) -> None:
        self.up = self.down = 0


async def session(
    relay: Relay, port: int, events: list[NewEvent], batch: int, compression: str
) -> dict[str, Any]:
    outbox = MemoryOutbox(epoch="0193b2f4-5d6e-7a8b-9c0d-e1f2a3b4c5d6")
    stored = outbox.append_now(events)
    settings = MQTTSettings(
        host="127.0.0.1",
        port=port,
        batch_max_events=batch,
        compression=compression,
        backlog_rate=1e12,
    )
    relay.reset()
    fwd = Forwarder(outbox, settings, device_id=DEVICE, boot=BOOT)
    task = asyncio.create_task(fwd.run())
    while fwd.stats.connects == 0 or outbox.pending_count:
        if task.done():
            task.result()
        await asyncio.sleep(0.005)
    await fwd.stop()
    await task
    while relay.open_sessions:
        await asyncio.sleep(0.005)
    return {
        "up": relay.up,
        "down": relay.down,
        "messages": fwd.stats.published_batches,
        "payload": fwd.stats.published_bytes,
        "json": sum(e.size for e in stored),
    }


async def run(args: argparse.Namespace, broker_port: int) -> None:
    relay = Relay(broker_port)
    port = await relay.start()
    events = typical_readings(args.events)
    empty = await session(relay, port, [], 100, "none")
    n = len(events)
    rows = []
    for batch in (1, 10, 100, 1000):
        for compression in ("none", "zlib"):
            r = await session(relay, port, events, batch, compression)
            rows.append((batch, compression, r))
    json_per_event = rows[0][2]["json"] / n
    print(f"Bytes on the wire per event: {n:,} typical readings (5 simulated sensor shapes), MQTT v5 QoS 1")
    print(f"  envelope JSON as stored (baseline): {json_per_event:.0f} bytes/event")
    print(
        f"  fixed cost of a session without events (subtracted): {empty['up']} B up, {empty['down']} B down"
    )
    print()
    print(
        f"  {'batch':>9} {'payload':>8} {'messages':>9} {'up B/event':>11} {'down B/event':>13} {'vs JSON':>8}"
    )
    for batch, compression, r in rows:
        up = (r["up"] - empty["up"]) / n
        down = (r["down"] - empty["down"]) / n
        label = f"{batch} (naive)" if batch == 1 else str(batch)
        print(
            f"  {label:>9} {compression:>8} {r['messages']:>9,} {up:>11.1f} {down:>13.2f} "
            f"{up / json_per_event:>7.0%}"
        )
    best_plain = next(r for b, c, r in rows if b == 100 and c == "none")
    best_zlib = next(r for b, c, r in rows if b == 100 and c == "zlib")
    naive = rows[0][2]
    print()
    print(
        f"  default batches of 100: {(best_plain['up'] - empty['up']) / n:.0f} B/event plain, "
        f"{(best_zlib['up'] - empty['up']) / n:.0f} B/event zlib; naive one-per-message "
        f"{(naive['up'] - empty['up']) / n:.0f} B/event"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=5000)
    args = parser.parse_args()
    from tests.mosquitto import Mosquitto

    with tempfile.TemporaryDirectory(prefix="bench-wire-") as tmp, Mosquitto(Path(tmp) / "broker") as broker:
        asyncio.run(run(args, broker.port))


if __name__ == "__main__":
    main()
