"""The power-cut campaign: the real daemon on the power-cut file system, cut again and again.

Each round: mount (a boot), start ``edge-agent run`` (through :mod:`tests.powercut.agent_main`
for its commit log) with its state dir on the mount, sampling several simulated sensors at
20 Hz and publishing end-to-end to a private Mosquitto where :class:`RecordingIngest`
stores and acknowledges; then, at a random moment, the power goes:

* ``timed``      — after a random run time;
* ``early``      — a random moment right after start (opening, recovery, migration);
* ``checkpoint`` — at the n-th write to the main database file, which SQLite in WAL mode
  writes only while checkpointing (the daemon's connection checkpoints every few pages here);
* ``wal``        — at the n-th write to the WAL: inside a transaction or its commit;
* ``stopped``    — after a clean stop (SIGTERM): SQLite's last checkpoint and its unlink of
  the WAL, which no directory fsync follows;
* ``rebuild``    — at the n-th write to the copy (``outbox.db.rebuild``) or to the main
  file of an outbox turned into 1 KiB pages before the start (what the release of issue
  15 made), which the daemon rebuilds with 4 KiB pages (:mod:`edge_agent.outbox.page_size`).

Each round runs with a commit window (``storage.commit_interval``) drawn from
``Settings.commit_intervals``, the shipped default among them: events wait in memory up to
that long, and acknowledged deletes ride on the next append's transaction; with ``0`` each
commits at once, as before issue 15.

In a share of the rounds the outbox cap is tiny and the ingest stops acknowledging, so
the outbox evicts in nearly every transaction: cuts land during evictions.  The daemon is
SIGKILLed, the file system reverted to what a disk would hold (everything since the last
fsync dropped, or in ``prefix`` rounds a random prefix of it kept, sometimes with a torn
write), unmounted, and the outbox inspected from a copy before the next round starts:

* it opens and passes ``quick_check`` (else it is counted as a quarantine, which the next
  start performs, and explained);
* no ``(epoch, seq)`` was ever given to two different event ids, across the daemon's commit
  log, what the ingest received and what the outbox holds (:class:`Ledger`);
* every event of the outbox's epoch that the daemon reported committed or the ingest saw is
  still in the outbox, or was acknowledged by the ingest, or lies in an evicted range
  announced by a gap event; and the outbox's ``last_seq`` is not behind any of them.

Used by ``tests/powercut/test_campaign.py`` (100 rounds in CI) and
``bench/powercut_campaign.py`` (longer runs, printing the counts).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from tests.conftest import REPO
from tests.mosquitto import Mosquitto
from tests.powercut.ledger import Event, Ledger, RecordingIngest, read_commit_log
from tests.powercut.mount import PowerCutMount

T = TypeVar("T")
DEVICE = "powercut"
OUTBOX = "state/outbox.db"
OTHER_PAGE_SIZE = 1024
"""The page size a ``rebuild`` round starts from (the outbox's own is 4 KiB)."""
KINDS = ("timed", "early", "checkpoint", "wal", "stopped", "rebuild")

SENSORS = """
[[sensors]]
name = "climate-a"
driver = "bme280"
bus = "sim"
address = 0x76
interval = "{interval}"

[[sensors]]
name = "climate-b"
driver = "bme280"
bus = "sim"
address = 0x77
interval = "{interval}"

[[sensors]]
name = "cabinet-a"
driver = "sht3x"
bus = "sim"
address = 0x44
interval = "{interval}"

[[sensors]]
name = "cabinet-b"
driver = "sht3x"
bus = "sim"
address = 0x45
interval = "{interval}"
"""


@dataclass
class Settings:
    rounds: int = 100
    seed: int = 7
    interval: str = "50ms"
    run_max: float = 1.0
    """Longest run before a timed cut (seconds after the first commit)."""
    early_max: float = 1.0
    """Latest early cut (seconds after the process started)."""
    weights: tuple[float, ...] = (0.27, 0.1, 0.22, 0.24, 0.1, 0.07)
    """Of KINDS."""
    commit_intervals: tuple[str | None, ...] = (None, None, "0", "250ms")
    """``storage.commit_interval`` of a round; None = the shipped default."""
    eviction_share: float = 0.3
    prefix_share: float = 0.35
    small_cap: str = "6KiB"
    autocheckpoints: tuple[int | None, ...] = (8, 16, 64, None)
    """Pages; None = the outbox's own setting."""
    synchronous: str = "FULL"
    """The outbox's setting for appends; "NORMAL" is the control run (it must fail)."""
    arm_timeout: float = 6.0
    stop_timeout: float = 40.0
    """A clean stop is bounded (about 20 s at worst); past this it counts as hung."""
    start_timeout: float = 40.0
    drain_timeout: float = 90.0


@dataclass
class OutboxImage:
    """What a copy of the outbox files holds after a cut."""

    state: str
    """"ok", "absent" (no file, or no schema yet) or the problem quick_check/opening found."""
    epoch: str | None = None
    last_seq: int = 0
    rows: dict[int, str] = field(default_factory=dict)
    """seq -> event id."""
    evicted: list[tuple[int, int]] = field(default_factory=list)
    evicted_size_cap: int = 0


@dataclass
class Counts:
    rounds: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    modes: Counter[str] = field(default_factory=Counter)
    windows: Counter[str] = field(default_factory=Counter)
    """Rounds by ``storage.commit_interval``."""
    checkpoint_writes: int = 0
    """Cuts at a write to the main database file: SQLite in WAL mode writes it only while
    checkpointing, so these cut a checkpoint."""
    mid_checkpoint: int = 0
    """Cuts with writes to the main database file done and not yet fsynced (half a checkpoint)."""
    mid_wal: int = 0
    """Cuts with WAL writes not yet fsynced (inside a transaction or a NORMAL-synced delete)."""
    eviction_rounds: int = 0
    """Rounds in which the outbox evicted (tiny cap, no acks)."""
    cuts_while_evicting: int = 0
    """Of those, cuts that fell with WAL writes pending (inside a transaction, which evicts)."""
    torn: int = 0
    dropped_ops: int = 0
    dropped_bytes: int = 0
    quarantines: list[str] = field(default_factory=list)
    epoch_changes: int = 0
    committed: int = 0
    seen: int = 0
    acked: int = 0
    evicted: int = 0
    pending_after_cut: int = 0
    resurrected: int = 0
    """Acknowledged events back in the outbox after a cut (their delete was not yet durable)."""
    reissued: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    behind: list[str] = field(default_factory=list)
    undelivered: int = 0
    stop_hangs: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failures(self) -> list[str]:
        return self.reissued + self.lost + self.behind

    def summary(self) -> str:
        lines = [
            f"power cuts: {self.rounds} in {self.seconds:.0f} s",
            "  by moment:  " + ", ".join(f"{k} {v}" for k, v in sorted(self.kinds.items())),
            "  by revert:  "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.modes.items()))
            + f" (torn writes {self.torn}); {self.dropped_ops} operations / {self.dropped_bytes} bytes dropped",
            f"  at a checkpoint's write to the main file: {self.checkpoint_writes}, "
            f"with earlier checkpoint writes not yet fsynced: {self.mid_checkpoint}",
            f"  inside a transaction (WAL written, not fsynced):      {self.mid_wal}",
            "  by commit window: " + ", ".join(f"{k} {v}" for k, v in sorted(self.windows.items())),
            f"  rounds evicting (tiny cap, no acks): {self.eviction_rounds}, "
            f"cut inside a transaction there: {self.cuts_while_evicting}",
            f"events: {self.committed} reported committed, {self.seen} received by the ingest, "
            f"{self.acked} acknowledged, {self.evicted} evicted (announced), "
            f"{self.pending_after_cut} pending in the outbox after the last cut; "
            f"{self.resurrected} acknowledged events back after a cut (to be sent again)",
            f"quarantined outboxes: {len(self.quarantines)}; epoch changes without quarantine: "
            f"{self.epoch_changes}",
            f"reissued seqs: {len(self.reissued)}; lost events: {len(self.lost)}; "
            f"outbox behind a known seq: {len(self.behind)}; not delivered after the final drain: "
            f"{self.undelivered}; clean stops that hung: {len(self.stop_hangs)}",
        ]
        for problem in (self.quarantines + self.stop_hangs + self.failures)[:5]:
            lines.append(f"  ! {problem}")
        return "\n".join(lines)


def _to_other_pages(path: Path) -> bool:
    """Turn an outbox into 1 KiB pages, as the release of issue 15 made it (offline,
    between rounds: no power cut here); False if there is no usable file."""
    if not path.exists():
        return False
    try:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                return False
            conn.execute("PRAGMA journal_mode = DELETE")
            conn.execute(f"PRAGMA page_size = {OTHER_PAGE_SIZE}")
            conn.execute("VACUUM")
            conn.execute("PRAGMA journal_mode = WAL")
            return int(conn.execute("PRAGMA page_size").fetchone()[0]) == OTHER_PAGE_SIZE
        finally:
            conn.close()
    except sqlite3.Error:
        return False


def inspect_outbox(state_dir: Path, scratch: Path) -> OutboxImage:
    """Open a *copy* of the outbox files (the mount is down) and read what they hold."""
    db = state_dir / "outbox.db"
    if not db.exists():
        return OutboxImage("absent")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    for suffix in ("", "-wal"):
        if Path(f"{db}{suffix}").exists():
            shutil.copyfile(f"{db}{suffix}", scratch / f"outbox.db{suffix}")
    conn = sqlite3.connect(scratch / "outbox.db")
    try:
        check = [r[0] for r in conn.execute("PRAGMA quick_check")]
        if check != ["ok"]:
            return OutboxImage("quick_check: " + "; ".join(check[:3]))
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "state" not in tables:
            return OutboxImage("absent")
        image = OutboxImage("ok")
        image.epoch = conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()[0]
        image.last_seq, image.evicted_size_cap = conn.execute(
            "SELECT last_seq, evicted_size_cap FROM state"
        ).fetchone()
        for seq, kind, body in conn.execute("SELECT seq, kind, body FROM events"):
            envelope = json.loads(body)
            image.rows[seq] = envelope["id"]
            if kind == "gap" and "epoch" not in envelope["data"]:
                image.evicted += [(a, b) for a, b in envelope["data"]["evicted"]]
        image.evicted += list(conn.execute("SELECT first, last FROM evictions"))
        return image
    except sqlite3.DatabaseError as exc:
        return OutboxImage(f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


def _in_ranges(seq: int, ranges: list[tuple[int, int]]) -> bool:
    return any(a <= seq <= b for a, b in ranges)


def spread(rounds: int, shares: dict[T, float], rng: random.Random) -> list[T]:
    """One choice a round, each in its share's proportion, shuffled: drawn one by one, a
    short campaign could miss a share by half and not exercise what it claims."""
    total = sum(shares.values())
    plan = [choice for choice, w in shares.items() for _ in range(round(rounds * w / total))]
    while len(plan) < rounds:  # rounding: the rest drawn by weight
        plan.append(rng.choices(list(shares), list(shares.values()))[0])
    plan = plan[:rounds]
    rng.shuffle(plan)
    return plan


class Campaign:
    def __init__(
        self,
        workdir: Path,
        broker: Mosquitto,
        settings: Settings,
        *,
        progress: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.dir = workdir
        self.broker = broker
        self.settings = settings
        self.rng = random.Random(settings.seed)
        rounds, rng = max(1, settings.rounds), self.rng
        self.kinds = spread(rounds, dict(zip(KINDS, settings.weights, strict=True)), rng)
        self.small_caps = spread(
            rounds, {True: settings.eviction_share, False: 1 - settings.eviction_share}, rng
        )
        self.prefixes = spread(rounds, {True: settings.prefix_share, False: 1 - settings.prefix_share}, rng)
        self.progress = progress
        self.backing = workdir / "disk"
        self.mnt = workdir / "mnt"
        self.commit_log = workdir / "commits.log"
        self.agent_log = workdir / "agent.log"
        self.counts = Counts()
        self.epoch: str | None = None
        self.quarantined_epochs: set[str] = set()
        self.reported_lost: set[Event] = set()
        self.resurrected_seen: set[Event] = set()
        self.ingest = RecordingIngest(broker.port)
        self.last_evicted: list[tuple[int, int]] = []

    # -- the daemon --------------------------------------------------------------------

    def _config(self, *, small_cap: bool, commit_interval: str | None = None) -> Path:
        path = self.dir / "edge-agent.toml"
        window = "" if commit_interval is None else f'commit_interval = "{commit_interval}"\n'

        path.write_text(
            f"""
[device]
id = "{DEVICE}"
clock_check = "none"

[storage]
state_dir = "{self.mnt / "state"}"
max_bytes = "{self.settings.small_cap if small_cap else "64MiB"}"
{window}
[mqtt]
host = "127.0.0.1"
port = {self.broker.port}
delivery = "end-to-end"
ack_timeout = "2s"
reconnect_min = "0.2s"
reconnect_max = "1s"
"""
            + SENSORS.format(interval=self.settings.interval)
        )
        return path

    def _start_agent(self, config: Path, autocheckpoint: int | None) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
        env["POWERCUT_COMMIT_LOG"] = str(self.commit_log)
        env["POWERCUT_PRAGMAS"] = json.dumps({"wal_autocheckpoint": autocheckpoint} if autocheckpoint else {})
        if self.settings.synchronous != "FULL":
            env["POWERCUT_SYNCHRONOUS"] = self.settings.synchronous
        with self.agent_log.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "tests.powercut.agent_main", "run", "--config", str(config)],
                cwd=REPO,
                stdout=out,
                stderr=out,
                env=env,
            )

    def _log_size(self) -> int:
        return self.commit_log.stat().st_size if self.commit_log.exists() else 0

    def _wait(self, predicate: Callable[[], bool], timeout: float, agent: subprocess.Popen[bytes]) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            if agent.poll() is not None:
                tail = self.agent_log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the daemon exited with {agent.returncode}:\n{tail}")
            time.sleep(0.02)
        return predicate()

    # -- one round ---------------------------------------------------------------------

    def round(self, n: int) -> None:
        s, rng, counts = self.settings, self.rng, self.counts
        kind, small_cap, prefix = (
            plan[n % len(plan)] for plan in (self.kinds, self.small_caps, self.prefixes)
        )
        if small_cap and rng.random() < 0.6:
            kind = "wal"  # nearly every transaction evicts here: cut inside one
        mode = "prefix" if prefix else "drop"
        torn = mode == "prefix" and rng.random() < 0.5
        autocheckpoint = rng.choice(s.autocheckpoints)
        window = rng.choice(s.commit_intervals)
        counts.windows["default" if window is None else window] += 1
        self.ingest.set_ack(not small_cap)
        config = self._config(small_cap=small_cap, commit_interval=window)
        if kind == "rebuild" and not _to_other_pages(self.backing / OUTBOX):
            kind = "early"  # no outbox yet (first round, or after a quarantine)
        mount = PowerCutMount(self.backing, self.mnt, log=self.dir / "fs.log")
        try:
            before = self._log_size()
            log_start = self.agent_log.stat().st_size if self.agent_log.exists() else 0
            if kind == "rebuild":  # inside the copy, or at the writes to the file after it
                mount.arm(rng.choice(("outbox.db.rebuild", "outbox.db")), rng.randint(1, 40))
            agent = self._start_agent(config, autocheckpoint)
            try:
                if kind == "rebuild":
                    if not self._wait(lambda: bool(mount.stats()["off"]), s.arm_timeout, agent):
                        kind += " (not reached: timed)"
                elif kind == "early":
                    time.sleep(rng.uniform(0, s.early_max))
                else:
                    if not self._wait(lambda: self._log_size() > before, s.start_timeout, agent):
                        raise RuntimeError(
                            f"round {n}: the daemon committed nothing within {s.start_timeout} s"
                        )
                    if kind == "timed":
                        time.sleep(rng.uniform(0.05, s.run_max))
                    elif kind == "stopped":
                        time.sleep(rng.uniform(0.05, s.run_max))
                        agent.send_signal(signal.SIGTERM)
                        try:
                            agent.wait(timeout=s.stop_timeout)
                        except subprocess.TimeoutExpired:  # cut it all the same, and say so
                            counts.stop_hangs.append(f"round {n}: no exit {s.stop_timeout:g} s after SIGTERM")
                    else:
                        time.sleep(rng.uniform(0, 0.3))
                        suffix = "outbox.db" if kind == "checkpoint" else "outbox.db-wal"
                        mount.arm(suffix, rng.randint(1, 12 if kind == "checkpoint" else 40))
                        if not self._wait(lambda: bool(mount.stats()["off"]), s.arm_timeout, agent):
                            kind += " (not reached: timed)"
                at_cut = mount.cut()
            finally:
                agent.send_signal(signal.SIGKILL)
                agent.wait()
            report = mount.revert(mode, seed=rng.randrange(2**32), torn=torn)

        finally:
            mount.unmount()

        pending = at_cut["pending_by_file"]
        wal_pending = pending.get(OUTBOX + "-wal", 0) > 0
        counts.rounds += 1
        counts.kinds[kind] += 1
        counts.modes[mode] += 1
        counts.checkpoint_writes += kind == "checkpoint"
        counts.mid_checkpoint += pending.get(OUTBOX, 0) > 0
        counts.mid_wal += wal_pending
        counts.torn += report["torn"] is not None
        counts.dropped_ops += report["dropped_ops"]
        counts.dropped_bytes += report["dropped_bytes"]

        image = inspect_outbox(self.backing / "state", self.dir / "scratch")
        # The outbox logs each eviction inside the transaction that does it (committed or cut).
        with self.agent_log.open("rb") as log:
            log.seek(log_start)
            if b"outbox size_cap: evicted" in log.read():
                counts.eviction_rounds += 1
                counts.cuts_while_evicting += wal_pending
        self.ingest.settle()
        self._check(n, image, f"{kind}/{mode}{'+torn' if torn else ''}")
        self.progress(
            f"round {n}: {kind:<10} {mode:<6} dropped {report['dropped_ops']:>4} ops; outbox {image.state}, "
            f"last seq {image.last_seq}, {len(image.rows)} pending"
        )

    def _check(self, n: int, image: OutboxImage, how: str) -> None:
        counts = self.counts
        seen, acked, gaps = self.ingest.snapshot()
        committed = read_commit_log(self.commit_log)
        ledger = Ledger()
        for epoch, seq, event_id in committed:
            ledger.note("commit log", epoch, seq, event_id)
        for epoch, seq, event_id in seen:
            ledger.note("ingest", epoch, seq, event_id)
        if image.epoch is not None:
            for seq, event_id in image.rows.items():
                ledger.note(f"outbox after cut {n}", image.epoch, seq, event_id)
        counts.reissued = ledger.reissued
        counts.committed = len(set(committed))
        counts.seen = len(seen)
        counts.acked = len(acked)

        if image.state not in ("ok", "absent"):
            # The next start moves the file aside (its events stay there, for salvage) and
            # starts a new epoch.
            counts.quarantines.append(f"round {n} ({how}): {image.state}")
            if self.epoch is not None:
                self.quarantined_epochs.add(self.epoch)
            self.epoch = None
            return
        if self.epoch is not None and image.epoch != self.epoch:
            counts.epoch_changes += 1
        self.epoch = image.epoch
        gap_ranges: dict[str, list[tuple[int, int]]] = {}
        for e, ranges in gaps:
            gap_ranges.setdefault(e, []).extend((a, b) for a, b in ranges)
        if image.epoch is not None:
            gap_ranges.setdefault(image.epoch, []).extend(image.evicted)
            self.last_evicted = gap_ranges[image.epoch]
        counts.pending_after_cut = len(image.rows)
        if image.epoch is not None:
            # Deleted (acknowledged) before the cut, back after it: a delete committed with
            # synchronous=NORMAL and not yet carried by a later fsync.  Sent again, never lost.
            back = {(image.epoch, seq, i) for seq, i in image.rows.items()} & acked
            counts.resurrected += len(back - self.resurrected_seen)
            self.resurrected_seen |= back
        counts.evicted = 0
        top: dict[str, int] = {}
        for epoch, seq, event_id in sorted(set(committed) | seen):
            top[epoch] = max(top.get(epoch, 0), seq)
            evicted = _in_ranges(seq, gap_ranges.get(epoch, []))
            if epoch == image.epoch and image.rows.get(seq) == event_id:
                continue
            counts.evicted += evicted
            if (epoch, seq, event_id) in acked or evicted or epoch in self.quarantined_epochs:
                continue
            if (epoch, seq, event_id) in self.reported_lost:
                continue
            self.reported_lost.add((epoch, seq, event_id))
            where = (
                "is neither in the outbox, acked nor evicted"
                if epoch == image.epoch
                else ("was not acked and its epoch is gone")
            )
            counts.lost.append(f"round {n} ({how}): epoch {epoch} seq {seq} ({event_id}) {where}")
        if image.epoch is not None and image.last_seq < top.get(image.epoch, 0):
            counts.behind.append(
                f"round {n} ({how}): outbox last_seq {image.last_seq} < seq {top[image.epoch]} already issued"
            )

    # -- the whole campaign ------------------------------------------------------------

    def run(self) -> Counts:
        started = time.monotonic()
        self.ingest.start()
        try:
            for n in range(1, self.settings.rounds + 1):
                self.round(n)
            self.drain()
        finally:
            self.ingest.stop()
            self.counts.seconds = time.monotonic() - started
        return self.counts

    def drain(self) -> None:
        """A last clean run with acks on: everything still owed reaches the ingest."""
        if self.epoch is None:
            return
        self.ingest.set_ack(True)
        mount = PowerCutMount(self.backing, self.mnt, log=self.dir / "fs.log")
        agent = self._start_agent(self._config(small_cap=False), None)

        def owed() -> int:
            seen, acked, gaps = self.ingest.snapshot()
            evicted = [(a, b) for e, ranges in gaps if e == self.epoch for a, b in ranges]
            known = {(e, s, i) for e, s, i in set(read_commit_log(self.commit_log)) | seen if e == self.epoch}
            # (earlier epochs were checked after each cut: acked, evicted or quarantined)
            return sum(
                1
                for e, s, i in known - acked
                if not _in_ranges(s, evicted) and not _in_ranges(s, self.last_evicted)
            )

        try:
            done = self._wait(lambda: owed() == 0, self.settings.drain_timeout, agent)
            self.counts.undelivered = 0 if done else owed()
        finally:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(timeout=30)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()
            mount.unmount()


def run_campaign(workdir: Path, settings: Settings, progress: Callable[[str], None] = print) -> Counts:
    workdir.mkdir(parents=True, exist_ok=True)
    with Mosquitto(workdir / "broker") as broker:
        return Campaign(workdir, broker, settings, progress=progress).run()
