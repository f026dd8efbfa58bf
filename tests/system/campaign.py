"""The fault campaign: real agents, Mosquitto and ``edge-ingest serve``, and faults at
random moments; then, in the ingest's database, nothing lost and nothing stored twice.

Faults: an agent, the broker or the ingest SIGKILLed and restarted, or SIGSTOPped and
continued; the agents' uplink through ``FaultProxy`` (drops, stalls, half-open
connections); an agent's wall clock jumped backwards or forwards (``jumping_clock``); and,
halfway, one broker outage of ``OUTAGE_S``.
At the end the faults stop, the agents are restarted without sampling until their
outboxes are empty, and the database is checked against every outbox:

- per device and epoch every committed seq (1 … last_seq) is stored, or reported evicted
  (a ``gaps`` row), or still pending in the outbox — ``lost`` counts the others.  The last
  agent keeps events for only ``EVICTING_MAX_AGE`` (``storage.max_age``), so outages evict
  and the "reported evicted" side of the account is exercised too;
- ``stored twice``: a (device, epoch, seq) with more than one event id, or a reading row
  repeated;
- the priority lane's order: events of kinds alarm, test_result, gap and status are
  first stored in increasing seq (ties: one transaction)."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.cloud.ingest_write.processes import IngestProcess, agent_config, ingest_config
from tests.conftest import REPO
from tests.daemon.agent_process import wait_until
from tests.mosquitto import Mosquitto
from tests.system.proxy import FaultProxy

PRIORITY_KINDS = ("alarm", "test_result", "gap", "status")
# An age cap that the campaign's outages (up to a few seconds) exceed: its agent evicts.
EVICTING_MAX_AGE = "2s"
OUTAGE_S = 6.0


@dataclass
class Counts:
    committed: int = 0
    delivered: int = 0
    duplicates_on_wire: int = 0
    evicted: int = 0
    pending: int = 0
    """Committed before the final drain and still in an outbox after it."""
    pending_at_stop: int = 0
    """Committed by the agents' own stop after the drain (their "stopping" status)."""
    lost: int = 0
    stored_twice: int = 0
    order_violations: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    checked: list[Agent] = field(default_factory=list, repr=False)
    """The agents whose outboxes were checked (a test checks the checker on them)."""

    def line(self) -> str:
        return (
            f"committed {self.committed}, delivered {self.delivered}, duplicates on the wire "
            f"{self.duplicates_on_wire}, evicted {self.evicted}, still pending {self.pending} "
            f"(+{self.pending_at_stop} committed at the final stop), "
            f"lost {self.lost}, stored twice {self.stored_twice}, priority-order violations "
            f"{self.order_violations}; faults {self.faults}"
        )


class Agent:
    def __init__(
        self,
        root: Path,
        broker: Mosquitto,
        proxy: FaultProxy,
        device: str,
        interval: str,
        *,
        max_age: str | None = None,
    ) -> None:
        self.device = device
        self.dir = root / device
        self.clock = self.dir / "clock-offset"
        self.configs = {
            sampling: self._via_proxy(
                agent_config(self.dir, broker, device, interval=interval, sampling=sampling, max_age=max_age),
                broker,
                proxy,
            )
            for sampling in (True, False)
        }
        self.clock.write_text("0")
        self.process: subprocess.Popen[bytes] | None = None
        self.drained_last: int | None = None
        """The last seq committed when its outbox had drained to empty (None: it never did)."""

    @staticmethod
    def _via_proxy(path: Path, broker: Mosquitto, proxy: FaultProxy) -> Path:
        text = path.read_text().replace(f"port = {broker.port}", f'port = {proxy.port}\nkeepalive = "5s"')
        path.write_text(text)
        return path

    @property
    def outbox(self) -> Path:
        return self.dir / "state" / "outbox.db"

    def start(self, *, sampling: bool = True) -> None:
        with (self.dir / "agent.log").open("ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.system.jumping_clock",
                    str(self.clock),
                    "run",
                    "--config",
                    str(self.configs[sampling]),
                ],
                cwd=REPO,
                stdout=out,
                stderr=out,
            )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            self.process.wait(30)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()


def _pause(process: subprocess.Popen[bytes] | None, seconds: float) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGSTOP)
    time.sleep(seconds)
    process.send_signal(signal.SIGCONT)


def _pending_seqs(outbox: Path) -> tuple[str, int, set[int]]:
    """The outbox's epoch, its last committed seq and the seqs it still holds."""
    with sqlite3.connect(f"file:{outbox}?mode=ro", uri=True) as conn:
        epoch = conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()[0]
        last = conn.execute("SELECT last_seq FROM state").fetchone()[0]
        pending = {r[0] for r in conn.execute("SELECT seq FROM events")}
    return str(epoch), int(last), pending


def verify(ingest_db: Path, agents: list[Agent], counts: Counts) -> None:
    with sqlite3.connect(ingest_db) as db:
        for agent in agents:
            epoch, last, pending = _pending_seqs(agent.outbox)
            stored = {
                int(r[0])
                for r in db.execute(
                    "SELECT seq FROM event_ids WHERE device_id = ? AND epoch = ?", (agent.device, epoch)
                )
            }
            evicted: set[int] = set()
            for first, end in db.execute(
                "SELECT first_seq, last_seq FROM gaps WHERE device_id = ? AND epoch = ?",
                (agent.device, epoch),
            ):
                evicted.update(range(int(first), int(end) + 1))
            committed = set(range(1, last + 1))
            counts.committed += len(committed)
            counts.delivered += len(stored & committed)
            counts.evicted += len(evicted & committed)
            at_stop = {s for s in pending if agent.drained_last is not None and s > agent.drained_last}
            counts.pending += len((pending - stored - at_stop) & committed)
            counts.pending_at_stop += len((at_stop - stored) & committed)
            counts.lost += len(committed - stored - evicted - pending)
            rows = db.execute(
                "SELECT seq, received_at FROM event_ids WHERE device_id = ? AND epoch = ? AND kind IN "
                f"({','.join('?' * len(PRIORITY_KINDS))}) ORDER BY received_at, seq",
                (agent.device, epoch, *PRIORITY_KINDS),
            ).fetchall()
            highest, at = 0, None
            for seq, received in rows:
                if seq < highest and received != at:
                    counts.order_violations += 1
                if seq > highest:
                    highest, at = seq, received
        counts.stored_twice += db.execute(
            "SELECT count(*) FROM (SELECT 1 FROM event_ids GROUP BY device_id, epoch, seq HAVING count(*) > 1)"
        ).fetchone()[0]
        counts.stored_twice += db.execute(
            "SELECT count(*) FROM (SELECT 1 FROM readings GROUP BY series_id, event_id, ts HAVING count(*) > 1)"
        ).fetchone()[0]


def run_campaign(
    root: Path,
    *,
    duration: float,
    seed: int,
    agents: int = 2,
    interval: str = "100ms",
    say: Callable[[str], None] = print,
) -> Counts:
    rnd = random.Random(seed)
    counts = Counts()
    faults = counts.faults
    with Mosquitto(root / "broker") as broker:
        ingest_db = root / "ingest.db"
        ingest = IngestProcess(
            ingest_config(root / "ingest", f"sqlite:///{ingest_db}", broker), root / "ingest.log"
        ).start()
        proxy = FaultProxy(broker.port).start()
        fleet = [
            Agent(
                root,
                broker,
                proxy,
                f"camp-{i}",
                interval,
                max_age=EVICTING_MAX_AGE if i == agents - 1 else None,
            )
            for i in range(agents)
        ]
        for a in fleet:
            a.start()
        try:
            deadline = time.monotonic() + duration
            outage_at = time.monotonic() + duration / 2
            while time.monotonic() < deadline:
                time.sleep(rnd.uniform(0.2, 1.2))
                if outage_at is not None and time.monotonic() >= outage_at:
                    # One outage longer than the evicting agent's age cap, whatever the seed:
                    # the random faults alone may be too short to evict anything.
                    outage_at = None
                    faults["outage"] = 1
                    broker.stop()
                    time.sleep(OUTAGE_S)
                    broker.start()
                    deadline += OUTAGE_S  # not at the random faults' expense
                    continue
                fault = rnd.choice(
                    [
                        "kill_agent",
                        "stop_agent",
                        "kill_broker",
                        "stop_broker",
                        "kill_ingest",
                        "stop_ingest",
                        "drop",
                        "stall",
                        "half_open",
                        "clock",
                        "clock",
                    ]
                )
                faults[fault] = faults.get(fault, 0) + 1
                agent = rnd.choice(fleet)
                if fault == "kill_agent":
                    agent.kill()
                    agent.start()
                elif fault == "stop_agent":
                    _pause(agent.process, rnd.uniform(0.3, 2.0))
                elif fault == "kill_broker":
                    broker.restart(kill=True)
                elif fault == "stop_broker":
                    _pause(broker.process, rnd.uniform(0.3, 2.0))
                elif fault == "kill_ingest":
                    ingest.stop(kill=True)
                    ingest.start()
                elif fault == "stop_ingest":
                    _pause(ingest.process, rnd.uniform(0.3, 2.0))
                elif fault == "drop":
                    proxy.drop()
                elif fault == "stall":
                    proxy.stall(rnd.uniform(0.3, 3.0))
                elif fault == "half_open":
                    proxy.half_open()
                else:
                    agent.clock.write_text(str(rnd.choice([-86400.0, -3600.0, -30.0, 30.0, 3600.0, 0.0])))
            say(f"faults done ({duration:.0f} s, seed {seed}): {faults}; draining")
            for a in fleet:
                a.clock.write_text("0")
                a.stop()
                a.start(sampling=False)  # no new readings: the outbox drains to empty
            drained = wait_until(lambda: all(_pending_seqs(a.outbox)[2] == set() for a in fleet), 90)
            for a in fleet:
                if drained:
                    a.drained_last = _pending_seqs(a.outbox)[1]
                # Its stop commits a "stopping" status that may still be pending when it exits
                # (sent at its next start): pending, not lost, and not a failure to drain.
                a.stop()
            ingest.stop()
            counts.duplicates_on_wire = ingest.duplicates()
            if not drained:
                say("the outboxes did not drain within 90 s")
        finally:
            proxy.stop()
            for a in fleet:
                if a.process is not None and a.process.poll() is None:
                    a.process.kill()
            if ingest.process is not None and ingest.process.poll() is None:
                ingest.stop(kill=True)
    counts.checked = fleet
    verify(ingest_db, fleet, counts)
    return counts
