"""Benchmark: bytes written to storage per event by ``edge-agent run`` (issue 15, flash wear).

Runs the real daemon as a subprocess on simulated sensors against a private Mosquitto,
with the default delivery (``broker``: an event leaves the outbox on the broker's PUBACK),
and measures, per phase:

* ``write_bytes`` of ``/proc/PID/io``: bytes the daemon caused to be sent to the block
  layer.  Linux counts them when a page of the page cache becomes dirty, so a page
  rewritten before it is written back counts once, and a page written, fsynced and
  rewritten counts twice, as on the disk.  It does NOT count what the file system adds on
  its own: ext4's journal (written by the ``jbd2`` thread) and its metadata.
* the sectors written to the block device holding the state directory, from
  ``/sys/block/DEV/stat``: what the card would receive, journal included.  With
  ``--fs loop`` (the default when run as root) the state directory is on an ext4 image of
  its own, loop-mounted, so that device sees the daemon's writes and nothing else's.
  ``--fs dir`` uses a plain temporary directory and leaves this column out: the machine's
  disk is shared with other processes.
* ``wchar``: bytes passed to ``write()``-like calls, whatever became of them;
* the size of each file of the state directory (outbox, its ``-wal`` and ``-shm``, the
  calibration database) at the start and end of the phase.

The two phases with the broker up are each ONE WHOLE CHECKPOINT CYCLE in steady state:
from a restart of the WAL (the first write after a checkpoint, which then rewrites the
file from its start, in place) to the next one, watched in the ``-shm`` header's
``mxFrame``; the first fill of the WAL (a growing file, which ext4 journals at every
fsync) is left out, and the checkpoint's own writes are in.  At 5 × 1 Hz a cycle takes
about 17 minutes (a 4 MiB WAL of 1,024 frames filled at one frame a second: two frames a
commit, a commit every 2 s) and the first fill as long again, so the bench runs for about
40 minutes.  The outage and drain phases last ``--seconds``.

Phases: 5 sensors at 1 Hz with the broker up; 10 sensors at 10 Hz with the broker up; the
same daemon with the broker stopped (an outage: the backlog grows); then the broker back
(the backlog drains, at ``mqtt.backlog_rate``, while new events keep coming).  Bytes per
event are over the events appended in the phase (``next_seq``), and in the drain phase
also over the events that left the outbox.  The floor, in the same table: the event's own
size, as stored (the envelope's compact JSON, the outbox's ``size`` column) and on the
wire (the batch payloads a subscriber receives, per event).  The baseline, in the same
run: plain ``sqlite3`` writing a row of the same size per event at the 5 × 1 Hz rate,
one transaction each in WAL at ``synchronous=FULL``, deleting the previous row in it — the
outbox's page pattern today, without the daemon, and after its WAL's first checkpoint.

The daemon's reconnect backoff is capped at 2 s (``mqtt.reconnect_max``) so that the drain
starts when the broker comes back rather than up to two minutes later.

    sudo .venv/bin/python bench/flash_wear.py [--seconds 30] [--fs loop|dir]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import paho.mqtt.client as mqtt  # noqa: E402
from daemon_footprint import _bench_environment  # noqa: E402
from daemon_footprint import config as sensor_config  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from edge_agent.outbox import read_stats  # noqa: E402
from tests.mosquitto import Mosquitto  # noqa: E402

DAY = 86400.0
SECTOR = 512


# -- where the bytes are counted -----------------------------------------------------------


def proc_io(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = int(value)
    return out


@dataclass
class Device:
    """The block device the state directory is on, if it is ours alone (else None)."""

    name: str | None

    def sectors_written(self) -> int:
        if self.name is None:
            return 0
        # Field 7 of /sys/block/DEV/stat: sectors written (always 512-byte units).
        return int(Path(f"/sys/block/{self.name}/stat").read_text().split()[6])


@contextlib.contextmanager
def loop_ext4(directory: Path, size_mb: int = 512) -> Iterator[tuple[Path, Device]]:
    """An ext4 file system of its own on a loop device (default mount options: data=ordered)."""
    image, mount = directory / "fs.img", directory / "mnt"
    mount.mkdir()
    with image.open("wb") as f:
        f.truncate(size_mb * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    dev = subprocess.check_output(["losetup", "-f", "--show", str(image)], text=True).strip()
    try:
        subprocess.run(["mount", "-t", "ext4", dev, str(mount)], check=True)
        try:
            yield mount, Device(Path(dev).name)
        finally:
            # A daemon just stopped can hold the mount for a moment longer.
            for _ in range(20):
                if subprocess.run(["umount", str(mount)], check=False).returncode == 0:
                    break
                time.sleep(0.5)
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)


@contextlib.contextmanager
def plain_dir(directory: Path) -> Iterator[tuple[Path, Device]]:
    yield directory, Device(None)


# -- the wire: a subscriber counting events and payload bytes ---------------------------------


class Subscriber:
    def __init__(self, port: int) -> None:
        self.events = 0
        self.payload_bytes = 0
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="flash-counter", protocol=mqtt.MQTTv5
        )
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *a: c.subscribe("devices/+/events/#", qos=1)
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.events += msg.payload.count(b'"seq":')
            self.payload_bytes += len(msg.payload)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# -- one phase ------------------------------------------------------------------------------


@dataclass
class Snapshot:
    at: float
    io: dict[str, int]
    sectors: int
    next_seq: int
    pending: int
    pending_bytes: int
    evicted: int
    files: dict[str, int]


def snapshot(pid: int, state: Path, device: Device) -> Snapshot:
    # Write back what is dirty on that file system (the -shm, a checkpoint's pages), so
    # that the device's count is of this phase's writes, not of writeback lagging behind.
    subprocess.run(["sync", "-f", str(state)], check=True)
    stats = read_stats(state / "outbox.db")
    files = {p.name: p.stat().st_size for p in sorted(state.iterdir()) if p.is_file()}
    return Snapshot(
        time.monotonic(),
        proc_io(pid),
        device.sectors_written(),
        stats.next_seq,
        stats.pending,
        stats.pending_bytes,
        stats.evicted_total,
        files,
    )


@dataclass
class Phase:
    name: str
    start: Snapshot
    end: Snapshot
    stored_bytes: float = 0.0
    """Mean stored envelope size of the events left in the outbox, if any."""
    notes: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.end.at - self.start.at

    @property
    def appended(self) -> int:
        return self.end.next_seq - self.start.next_seq

    @property
    def left(self) -> int:
        """Events that left the outbox (acknowledged and deleted, or evicted)."""
        return self.appended - (self.end.pending - self.start.pending)

    def delta(self, key: str) -> int:
        return self.end.io[key] - self.start.io[key]

    @property
    def device_bytes(self) -> int:
        return (self.end.sectors - self.start.sectors) * SECTOR


def measure(name: str, pid: int, state: Path, device: Device, seconds: float) -> Phase:
    start = snapshot(pid, state, device)
    time.sleep(seconds)
    end = snapshot(pid, state, device)
    return Phase(name, start, end)


# -- the daemon -------------------------------------------------------------------------------


def write_config(directory: Path, port: int, count: int, interval: float) -> Path:
    path = sensor_config(directory, port, count, interval)
    # The outage phase needs the daemon back on the broker within a second or two of it.
    text = path.read_text().replace("[mqtt]\n", '[mqtt]\nreconnect_min = "0.2s"\nreconnect_max = "2s"\n', 1)
    path.write_text(text)
    return path


@contextlib.contextmanager
def agent(cfg: Path, python: list[str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """``edge-agent run``; ``python`` replaces ``[sys.executable, "-m", "edge_agent"]``."""
    proc = subprocess.Popen(
        [*(python or [sys.executable, "-m", "edge_agent"]), "run", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_bench_environment(),
    )
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(30)


def wait_for(state: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not (state / "outbox.db").exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no outbox in {state} after {timeout} s")
        time.sleep(0.1)


def settle(state: Path, warmup: float, limit: float = 120.0) -> bool:
    """Wait ``warmup``, then until the outbox's WAL stops growing (at most ``limit`` s).

    Until its first checkpoint the WAL file grows with every commit, and ext4 journals
    each fsync that changes a file's size: a device's first minute writes about twice
    what it writes afterwards, when the WAL is rewritten in place.  Measure afterwards."""
    time.sleep(warmup)
    wal = state / "outbox.db-wal"
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = wal.stat().st_size if wal.exists() else -1
        time.sleep(3.0)
        if wal.exists() and wal.stat().st_size == before:
            return True
    return False


def wal_frames(state: Path) -> int:
    """Frames in the outbox's WAL now: ``mxFrame`` of the wal-index header (``-shm``, offset 16,
    native byte order); 0 when there is none."""
    try:
        with (state / "outbox.db-shm").open("rb") as f:
            header = f.read(20)
    except FileNotFoundError:
        return 0
    return int.from_bytes(header[16:20], sys.byteorder) if len(header) == 20 else 0


def wait_restart(state: Path, limit: float) -> bool:
    """Wait (at most ``limit`` s) until the WAL restarts from its start: the write after a
    checkpoint that copied all of it.  True if it did."""
    deadline = time.monotonic() + limit
    last = wal_frames(state)
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = wal_frames(state)
        if now < last:
            return True
        last = now
    return False


def measure_cycle(name: str, pid: int, state: Path, device: Device, limit: float) -> Phase:
    """One whole checkpoint cycle in steady state: from a restart of the WAL (after its first
    fill, so the file is rewritten in place) to the next.  The phase holds one checkpoint and
    the commits between two, in the proportions the daemon runs them for as long as it runs."""
    first = wait_restart(state, limit)
    start = snapshot(pid, state, device)
    second = wait_restart(state, limit)
    phase = Phase(name, start, snapshot(pid, state, device))
    if not (first and second):
        phase.notes.append(f"no whole checkpoint cycle within {limit:.0f} s: NOT steady state")
    else:
        phase.notes.append("one whole checkpoint cycle")
    return phase


def mean_stored_size(state: Path) -> float:
    stats = read_stats(state / "outbox.db")
    return stats.pending_bytes / stats.pending if stats.pending else 0.0


# -- the baseline: plain sqlite3, the outbox's pattern without the daemon -----------------------

_BASELINE = r"""
import os, sqlite3, sys, time
path, rate, seconds, size = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA journal_mode = WAL")
db.execute("PRAGMA synchronous = FULL")
db.execute("CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, body TEXT NOT NULL)")
row = "x" * size
seq = 0
def one():
    global seq
    seq += 1
    db.execute("BEGIN")
    db.execute("INSERT INTO events VALUES (?, ?)", (seq, row))
    db.execute("DELETE FROM events WHERE seq = ?", (seq - 1,))
    db.execute("COMMIT")
for _ in range(1500):  # past the first checkpoint at full speed, as the daemon is (settle)
    one()
first, t0 = seq, time.monotonic()
print(os.getpid(), flush=True)
sys.stdin.readline()
while time.monotonic() - t0 < seconds:
    one()
    time.sleep(max(0.0, t0 + (seq - first) / rate - time.monotonic()))
print(seq - first, flush=True)
sys.stdin.readline()
"""


def baseline(state: Path, device: Device, rate: float, seconds: float, size: int) -> tuple[int, int, int]:
    """(write_bytes, device bytes, rows) of plain sqlite3 at ``rate`` rows/s."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _BASELINE, str(state / "baseline.db"), str(rate), str(seconds), str(size)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    pid = int(proc.stdout.readline())
    io0, s0 = proc_io(pid), device.sectors_written()
    proc.stdin.write("go\n")
    proc.stdin.flush()
    rows = int(proc.stdout.readline())  # the process waits, alive, for its reading
    io1, s1 = proc_io(pid), device.sectors_written()
    proc.stdin.write("bye\n")
    proc.stdin.flush()
    proc.wait(10)
    return io1["write_bytes"] - io0["write_bytes"], (s1 - s0) * SECTOR, rows


# -- the report ---------------------------------------------------------------------------------


def per(value: float, n: int) -> str:
    return f"{value / n:9,.0f}" if n else f"{'-':>9}"


def report(
    phases: list[Phase],
    floor_stored: float,
    floor_wire: float,
    base: tuple[int, int, int],
    args: argparse.Namespace,
    device: Device,
) -> None:
    has_dev = device.name is not None
    print(
        "flash wear: edge-agent run; broker-up phases: one whole checkpoint cycle each;"
        f" outage and drain: {args.seconds:.0f} s each; state dir on "
        + ("its own loop-mounted ext4 (data=ordered)" if has_dev else "the machine's disk (shared)")
    )
    print("bytes per event appended in the phase; MB/day at the phase's event rate")
    head = f"{'phase':26} {'ev/s':>6} {'write_bytes':>11} {'device':>9} {'wchar':>9} {'MB/day':>8} {'MB/day dev':>10}"
    print(head)
    print("-" * len(head))
    for p in phases:
        rate = p.appended / p.seconds
        wb, dev, wc = p.delta("write_bytes"), p.device_bytes, p.delta("wchar")
        print(
            f"{p.name:26} {rate:6.1f} {per(wb, p.appended):>11} {per(dev, p.appended) if has_dev else '-':>9}"
            f" {per(wc, p.appended)} {wb / p.seconds * DAY / 1e6:8,.0f}"
            f" {dev / p.seconds * DAY / 1e6 if has_dev else 0:10,.0f}"
        )
        if p.name.startswith("drain"):
            print(
                f"{'  per event that left':26} {p.left / p.seconds:6.1f} {per(wb, p.left):>11}"
                f" {per(dev, p.left) if has_dev else '-':>9} {per(wc, p.left)}"
            )
    wb, dev, rows = base
    print(
        f"{'baseline: sqlite3 1 row/tx':26} {rows / args.seconds:6.1f} {per(wb, rows):>11}"
        f" {per(dev, rows) if has_dev else '-':>9} {'':>9} {wb / args.seconds * DAY / 1e6:8,.0f}"
        f" {dev / args.seconds * DAY / 1e6 if has_dev else 0:10,.0f}"
    )
    print(f"{'floor: stored envelope':26} {'':6} {floor_stored:11,.0f}")
    print(f"{'floor: on the wire':26} {'':6} {floor_wire:11,.0f}")
    print()
    for p in phases:
        print(
            f"  {p.name}: {p.seconds:.0f} s, {p.appended:,} events;"
            f" cancelled_write_bytes {p.delta('cancelled_write_bytes'):,}"
            f"{'; ' if p.notes else ''}{'; '.join(p.notes)}"
        )
    print()
    print("state directory, file sizes at the start -> end of each phase (bytes):")
    for p in phases:
        sizes = ", ".join(
            f"{name} {p.start.files.get(name, 0):,}->{size:,}"
            for name, size in p.end.files.items()
            if not name.endswith(".lock")
        )
        print(f"  {p.name}: {sizes}")
    print()
    print("write_bytes counts what the daemon's own writes dirtied (data and SQLite's files,")
    print("temporary ones included: cancelled_write_bytes is what a deleted file never wrote back);")
    print("'device' is what reached the block device, ext4's journal and metadata included.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="Length of each phase")
    parser.add_argument(
        "--cycle-limit",
        type=float,
        default=1500.0,
        help="Longest wait for each WAL restart of the broker-up phases (each is one checkpoint cycle)",
    )
    parser.add_argument("--fs", choices=["loop", "dir"], default="loop" if os.geteuid() == 0 else "dir")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        where = loop_ext4(root) if args.fs == "loop" else plain_dir(root / "fs")
        if args.fs == "dir":
            (root / "fs").mkdir()
        with where as (fs, device), Mosquitto(root / "broker") as broker:
            wire = Subscriber(broker.port)
            phases: list[Phase] = []

            five = fs / "five"
            five.mkdir()
            with agent(write_config(five, broker.port, 5, 1.0)) as proc:
                wait_for(five / "state")
                phases.append(
                    measure_cycle("5 sensors x 1 Hz", proc.pid, five / "state", device, args.cycle_limit)
                )

            ten = fs / "ten"
            ten.mkdir()
            w0 = (wire.events, wire.payload_bytes)
            with agent(write_config(ten, broker.port, 10, 0.1)) as proc:
                wait_for(ten / "state")
                phases.append(
                    measure_cycle("10 sensors x 10 Hz", proc.pid, ten / "state", device, args.cycle_limit)
                )
                w1 = (wire.events, wire.payload_bytes)
                broker.stop()
                phases.append(measure("outage (10 x 10 Hz)", proc.pid, ten / "state", device, args.seconds))
                floor_stored = mean_stored_size(ten / "state")
                broker.start()
                phases.append(measure("drain (10 x 10 Hz)", proc.pid, ten / "state", device, args.seconds))
            wire.close()
            floor_wire = (w1[1] - w0[1]) / max(1, w1[0] - w0[0])

            rate = phases[0].appended / phases[0].seconds
            base = baseline(fs, device, rate, args.seconds, round(floor_stored))
        report(phases, floor_stored, floor_wire, base, args, device)


if __name__ == "__main__":
    main()
