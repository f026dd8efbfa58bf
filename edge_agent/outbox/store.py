"""The durable outbox: one SQLite file (WAL) that events are committed to before anything else.

Guarantees:

* ``append`` commits its events in ONE transaction with ``synchronous=FULL``: when it
  returns, the events survive kill -9 and power loss.  Their seqs are assigned inside that
  transaction from a counter stored in the same file (``state.last_seq``), so a seq is
  never reused, not after deletes, restarts or evictions.  See docs/DURABILITY.md for why
  FULL and not NORMAL.
* ``fetch`` sees committed events only; ``delete`` is idempotent.  Deletes commit with
  ``synchronous=NORMAL``: one lost on a power cut only brings an acknowledged event back,
  to be sent again (a duplicate, which the cloud removes by id), never a loss.
* Caps, enforced in the transaction that appends, never on the events being appended:

  - size: ``max_bytes`` bounds the sum of the stored events' ``size`` (the UTF-8 bytes
    of each envelope's compact JSON, as on the wire), not the file: SQLite's pages, the
    index and the WAL come on top (see docs/DURABILITY.md for the measured ratio).  Over
    the cap, the oldest readings are evicted, then the oldest priority events, down to
    ``LOW_WATER`` (90 %) of it, so a full outbox does not evict on every append.
  - age: ``max_age_s`` on the outbox runtime clock (:mod:`edge_agent.outbox.runtime`),
    so a wall-clock jump cannot purge a backlog.  Once the oldest event is older than
    ``max_age_s``, every event older than ``LOW_WATER`` of it is evicted.
  - disk full (``SQLITE_FULL``): the transaction is rolled back, the WAL checkpointed and
    truncated, the oldest events evicted, and the append retried; only when nothing is
    left to evict does it raise :class:`OutboxFullError`.

  Every eviction is counted (persisted), logged in ``evictions`` and announced by a
  ``gap`` event (``data = {"reason", "evicted": [[first, last], …], "count"}``); a gap
  event that is itself evicted has its ranges folded into the next one.

One connection serves everything, guarded by a lock, so a fetch never sees a transaction
half done; a write transaction runs in a task shielded from cancellation, so a cancelled
caller cannot leave it open or make the in-memory counters disagree with the file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import logging
import math
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import aiosqlite

from edge_agent.events import Lane, NewEvent, StoredEvent
from edge_agent.outbox import codec, ranges
from edge_agent.outbox.codec import EncodedEvent
from edge_agent.outbox.dirs import make_durable_dir
from edge_agent.outbox.errors import OutboxClosedError, OutboxError, OutboxFullError, OutboxLockedError
from edge_agent.outbox.insert import Rows
from edge_agent.outbox.recovery import BUSY_TIMEOUT_MS, Prepared, is_full, prepare
from edge_agent.outbox.reserve import Reserve
from edge_agent.outbox.runtime import RuntimeClock
from edge_agent.outbox.schema import EVICTION_LOG_ROWS
from edge_agent.outbox.stats import OutboxStats, export_pending, read_stats
from edge_agent.protocol import ClockState, rfc3339_ms, seq_ranges

log = logging.getLogger("edge_agent.outbox")

T = TypeVar("T")
Synchronous = Literal["FULL", "NORMAL"]
EvictionReason = Literal["size_cap", "age_cap", "disk_full"]

LOW_WATER = 0.9
"""Eviction goes down to this fraction of a cap (hysteresis)."""
SCAN_CHUNK = 5000
"""Rows read per query while choosing what to evict or fix (bounded memory)."""
JOURNAL_SIZE_LIMIT = 32 * 2**20
"""After a checkpoint the WAL file is truncated to this: a big transaction does not leave a big file."""
CACHE_SIZE_KIB = 512
"""SQLite page cache (default 2 MiB, all of it resident once a backlog builds up).  Appends touch
the right edge of the B-trees and fetches/deletes the left edge, a few pages each: append and
fetch+delete speed measured the same from 2 MiB down to 128 KiB on a 300,000-event backlog."""
DISK_FULL_MIN_EVICTION = 16 * 1024
ROOM_STEP = 64 * 1024
"""Bytes evicted per transaction while making room on a full disk."""
VACUUM_STEP_PAGES = 32
DEFAULT_RESERVE = 8 * 2**20
PAGE_SIZE = 4096
MIN_AUTOCHECKPOINT_PAGES = 16
DISK_FULL_ATTEMPTS = 12
TIGHT_SLACK = 256 * 1024
"""Free bytes, beyond the reserve and a full WAL, that end the tight-disk mode."""
TIGHT_CHECK_COMMITS = 256
"""While the disk is tight, look whether room came back every this many commits."""
PUBLISH_PERSIST_INTERVAL = 5.0
"""``record_publish`` writes at most this often on its own; otherwise it rides on the next transaction."""
NO_DEADLINE = math.inf

_UPDATE_STATE = (
    "UPDATE state SET last_seq = ?, runtime = ?, pending_bytes = ?, pending_count = ?, commits = ?,"
    " evicted_size_cap = ?, evicted_age_cap = ?, evicted_disk_full = ?, disk_full_count = ?,"
    " last_publish = ? WHERE id = 1"
)
_SELECT_STATE = (
    "SELECT last_seq, runtime, pending_bytes, pending_count, commits, evicted_size_cap, evicted_age_cap,"
    " evicted_disk_full, disk_full_count, last_publish FROM state WHERE id = 1"
)


@dataclasses.dataclass(slots=True)
class _Tally:
    """The ``state`` row.  A transaction works on a copy, swapped in only after COMMIT."""

    last_seq: int
    runtime: float
    pending_bytes: int
    pending_count: int
    commits: int
    evicted_size_cap: int
    evicted_age_cap: int
    evicted_disk_full: int
    disk_full_count: int
    last_publish: float | None

    def row(self) -> tuple[Any, ...]:
        return dataclasses.astuple(self)

    def copy(self) -> _Tally:
        return dataclasses.replace(self)

    def count_evicted(self, reason: EvictionReason, n: int) -> None:
        name = f"evicted_{reason}"
        setattr(self, name, getattr(self, name) + n)


@dataclasses.dataclass
class _Eviction:
    """One eviction round being built."""

    reason: EvictionReason
    evicted: list[ranges.Range] = dataclasses.field(default_factory=list)
    folded: list[ranges.Range] = dataclasses.field(default_factory=list)
    """Ranges announced by gap events that were themselves evicted."""
    count: int = 0
    bytes: int = 0


class Outbox:
    """The durable outbox.  Build it with :meth:`open`; one process at a time per file."""

    epoch: str
    """Id of this database; a new database (first start, or after a quarantine) is a new epoch."""
    quarantined: Path | None
    """Where a corrupt file found at open was moved (else None)."""

    def __init__(
        self,
        path: Path,
        conn: aiosqlite.Connection,
        lock_fd: int,
        prepared: Prepared,
        tally: _Tally,
        reserve: Reserve,
        *,
        max_bytes: int,
        max_age_s: float,
        boot: str,
        monotonic: Callable[[], float],
        wall: Callable[[], float],
        clock_state: Callable[[], ClockState],
    ) -> None:
        self.path = path
        self.epoch = prepared.epoch
        self.quarantined = prepared.quarantined
        self.boot = boot
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._conn = conn
        self._lock_fd = lock_fd
        self._tally = tally
        self._reserve = reserve
        self._runtime = RuntimeClock(tally.runtime, monotonic)
        self._monotonic = monotonic
        self._wall = wall
        self._clock_state = clock_state
        self._lock = asyncio.Lock()
        self._committed = asyncio.Event()
        self._synchronous: Synchronous = "FULL"
        """The connection's current setting."""
        self._durable: Synchronous = "FULL"
        """The setting for transactions that commit events (FULL unless benchmarking NORMAL)."""
        self._age_deadline = NO_DEADLINE
        self._last_publish = tally.last_publish
        self._publish_persisted_at = -math.inf
        self._disk_full_unsaved = 0
        self._autocheckpoint = autocheckpoint_pages(reserve.size)
        self._tight = False
        """The disk was full: the WAL is kept small so it does not need room to grow."""
        self._closed = False
        self.commits = 0
        """Write transactions committed by this process (group commit shows here)."""

    # -- opening and closing -------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        max_bytes: int,
        max_age_s: float,
        boot: str,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        clock_state: Callable[[], ClockState] = lambda: "synced",
        pragmas: Mapping[str, str | int] | None = None,
        synchronous: Synchronous = "FULL",
        reserve_bytes: int = DEFAULT_RESERVE,
    ) -> Outbox:
        """Open (creating, migrating or quarantining as needed) the outbox at ``path``.

        ``clock_state`` tells whether the wall clock is synced, for the events the outbox
        makes itself (gap, status).  ``pragmas`` are applied to the connection after ours
        (tests inject ``max_page_count`` to make SQLite report a full disk).
        ``synchronous="NORMAL"`` exists for the benchmark only: it can lose committed
        events on a power cut (docs/DURABILITY.md).  ``reserve_bytes`` is the disk space
        kept back to recover from a full disk (:mod:`edge_agent.outbox.reserve`); the WAL
        is checkpointed before it outgrows half of it.
        """
        if max_bytes <= 0 or max_age_s <= 0:
            raise ValueError("max_bytes and max_age_s must be positive")
        path = Path(path)
        # Its name in its parent must survive a power cut too (see dirs.py).
        await asyncio.to_thread(make_durable_dir, path.parent)
        lock_fd = _lock(path)
        conn: aiosqlite.Connection | None = None
        try:
            prepared = await asyncio.to_thread(prepare, path, wall())
            reserve = Reserve(path.with_name(path.name + ".reserve"), reserve_bytes)
            if not await asyncio.to_thread(reserve.restore):
                log.warning("no room for the outbox reserve (%d bytes) on a nearly full disk", reserve_bytes)
            conn = await aiosqlite.connect(path, isolation_level="IMMEDIATE")
            for name, value in {
                "busy_timeout": BUSY_TIMEOUT_MS,
                "synchronous": synchronous,
                "journal_size_limit": JOURNAL_SIZE_LIMIT,
                "cache_size": -CACHE_SIZE_KIB,  # negative: KiB, whatever the page size
                "wal_autocheckpoint": autocheckpoint_pages(reserve_bytes),
                **(pragmas or {}),
            }.items():
                await conn.execute(f"PRAGMA {name} = {value}")
            rows = list(await conn.execute_fetchall(_SELECT_STATE))
            outbox = cls(
                path,
                conn,
                lock_fd,
                prepared,
                _Tally(*rows[0]),
                reserve,
                max_bytes=max_bytes,
                max_age_s=max_age_s,
                boot=boot,
                monotonic=monotonic,
                wall=wall,
                clock_state=clock_state,
            )
            outbox._synchronous = outbox._durable = synchronous
            await outbox._after_open(prepared)
            return outbox
        except BaseException as exc:
            if conn is not None:
                await conn.close()
            os.close(lock_fd)
            if isinstance(exc, sqlite3.Error):
                raise OutboxError(f"cannot open the outbox {path}: {exc}") from exc
            raise

    async def _after_open(self, prepared: Prepared) -> None:
        self._age_deadline = await self._oldest_deadline()
        if prepared.quarantined is not None:
            await self.append(
                [
                    self._own_event(
                        "status",
                        {
                            "event": "outbox_quarantined",
                            "quarantined_file": str(prepared.quarantined),
                            "problem": prepared.problem,
                            "old_epoch": prepared.old_epoch,
                        },
                    )
                ]
            )
        elif self._runtime.now() >= self._age_deadline or self._tally.pending_bytes > self.max_bytes:
            # The caps may have been lowered in the configuration since the last run.
            await self._write(lambda t: self._enforce_caps(t, protect_from=t.last_seq + 1))

    async def close(self) -> None:
        """Persist the runtime clock and counters, checkpoint, close.  Idempotent."""
        if self._closed:
            return
        try:
            await self._write(_nothing)
        except OutboxError as exc:
            log.warning("could not persist the outbox state at close: %s", exc)
        self._closed = True
        self._notify()
        try:
            await self._conn.close()
        finally:
            os.close(self._lock_fd)

    # -- public API --------------------------------------------------------------------

    @property
    def next_seq(self) -> int:
        """The seq the next committed event will get."""
        return self._tally.last_seq + 1

    @property
    def pending_bytes(self) -> int:
        return self._tally.pending_bytes

    @property
    def pending_count(self) -> int:
        return self._tally.pending_count

    @property
    def evicted(self) -> dict[EvictionReason, int]:
        """Events evicted over the file's life, by reason (for metrics; no query)."""
        t = self._tally
        return {
            "size_cap": t.evicted_size_cap,
            "age_cap": t.evicted_age_cap,
            "disk_full": t.evicted_disk_full,
        }

    def runtime(self) -> float:
        """The outbox runtime clock now (seconds)."""
        return self._runtime.now()

    def wall(self) -> float:
        """The (injected) wall clock."""
        return self._wall()

    async def salvage_progress(self, source: str) -> int:
        """The last old seq salvaged from ``source`` (0: never), see :mod:`edge_agent.outbox.salvage`."""
        rows = await self._read("SELECT last_old_seq FROM salvaged WHERE source = ?", (source,))
        return int(rows[0][0]) if rows else 0

    def encode(self, event: NewEvent) -> EncodedEvent:
        """Encode ahead of the transaction (``ValueError`` if the event can never be sent)."""
        return codec.encode(event, self.epoch)

    async def append(self, events: Sequence[NewEvent]) -> list[StoredEvent]:
        """Commit ``events`` in ONE transaction; their seqs are assigned inside it.

        Raises ``ValueError`` (nothing committed) if an event has no valid wire form,
        :class:`OutboxFullError` if no room could be made on the disk, and
        :class:`OutboxError` for other storage failures.
        """
        return await self.append_encoded([self.encode(e) for e in events])

    async def append_encoded(
        self, encoded: Sequence[EncodedEvent], *, also: Sequence[tuple[str, tuple[Any, ...]]] = ()
    ) -> list[StoredEvent]:
        """:meth:`append` for events already encoded; ``also`` = statements for the same transaction."""
        if not encoded and not also:
            return []
        try:
            stored = await self._write(lambda t: self._insert_batch(t, encoded, also))
        except OutboxError as exc:
            if not is_full(exc.__cause__ or exc):
                raise
            stored = await self._append_when_full(encoded, also, exc)
        return stored

    async def fetch(
        self, lane: Lane, *, after_seq: int = 0, before_seq: int | None = None, limit: int = 100
    ) -> list[StoredEvent]:
        """Pending events of ``lane`` with ``after_seq < seq < before_seq``, in seq order."""
        upper = 2**63 - 1 if before_seq is None else before_seq
        rows = await self._read(
            "SELECT seq, kind, body, size FROM events WHERE lane = ? AND seq > ? AND seq < ? ORDER BY seq LIMIT ?",
            (codec.LANE_CODE[lane], after_seq, upper, limit),
        )
        # No decoding here: the uplink sends the stored text as it is.
        return [codec.stored(seq, kind, body, size) for seq, kind, body, size in rows]

    async def wait_for_events(self, after_seq: int, timeout: float) -> bool:
        """True as soon as a pending event with seq > ``after_seq`` exists; False after ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        known = after_seq
        while not self._closed:
            if self._tally.last_seq > known:
                try:
                    if await self._read("SELECT 1 FROM events WHERE seq > ? LIMIT 1", (after_seq,)):
                        return True
                except OutboxClosedError:
                    return False
                known = self._tally.last_seq  # all of those are gone already: wait for newer
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                async with asyncio.timeout(remaining):  # not wait_for: it can swallow a cancellation
                    await self._committed.wait()
            except TimeoutError:
                return False
        return False

    async def delete(self, seqs: Iterable[int]) -> int:
        """Delete (acknowledged) events; unknown seqs are ignored.  Returns rows deleted."""
        wanted = sorted(set(seqs))
        if not wanted:
            return 0

        async def body(tally: _Tally) -> int:
            rows = await self._conn.execute_fetchall(
                "DELETE FROM events WHERE seq IN (SELECT value FROM json_each(?)) RETURNING size",
                (codec.dumps(wanted),),
            )
            sizes = [size for (size,) in rows]
            tally.pending_bytes -= sum(sizes)
            tally.pending_count -= len(sizes)
            return len(sizes)

        return await self._write_making_room(body, synchronous="NORMAL")

    async def record_publish(self, wall_time: float) -> None:
        """Remember the last successful publish (for stats); written at most every few seconds."""
        self._last_publish = wall_time
        if self._runtime.now() - self._publish_persisted_at >= PUBLISH_PERSIST_INTERVAL:
            await self._write_making_room(_nothing, synchronous="NORMAL")

    async def correct_unsynced(self, boot: str, wall_minus_mono: float) -> int:
        """Give this boot's pending ``unsynced`` events ``ts = mono + wall_minus_mono``.

        ``clock`` stays ``"unsynced"`` so downstream knows ``ts`` was derived (the envelope
        forbids extra keys); a corrected event is not corrected again.  Events of earlier
        boots cannot be corrected (their ``mono`` belongs to another boot) and keep their
        ``ts``.  Works in chunks of short transactions.  Returns events corrected.
        """
        corrected = 0
        after = 0

        async def chunk(tally: _Tally) -> tuple[int, int]:
            rows = await self._conn.execute_fetchall(
                "SELECT seq, size, body FROM events WHERE unsynced = 1 AND seq > ? ORDER BY seq LIMIT ?",
                (after, SCAN_CHUNK),
            )
            last = 0
            updates: list[tuple[str, int, int]] = []
            for seq, size, body in rows:
                last = seq
                envelope = codec.decode(body, size).envelope
                if envelope["boot"] != boot:
                    continue
                envelope["ts"] = rfc3339_ms(datetime.fromtimestamp(envelope["mono"] + wall_minus_mono, UTC))
                text = codec.dumps(envelope)
                new_size = codec.utf8_len(text)
                updates.append((text, new_size, seq))
                tally.pending_bytes += new_size - size
            await self._conn.executemany(
                "UPDATE events SET body = ?, size = ?, unsynced = 0 WHERE seq = ?", updates
            )
            return last, len(updates)

        while True:
            after, n = await self._write(chunk)
            corrected += n
            if not after:
                return corrected

    async def stats(self) -> OutboxStats:
        """Counters and sizes (read through a separate connection: appends are not held up)."""
        self._check_open()
        snapshot = await asyncio.to_thread(read_stats, self.path, runtime_now=self._runtime.now())
        return dataclasses.replace(
            snapshot,
            commits_this_process=self.commits,
            last_publish=self._last_publish,
            quarantined=str(self.quarantined) if self.quarantined else None,
        )

    async def export(self, out: Path) -> int:
        """Write the pending envelopes to ``out`` as JSON lines in seq order; returns how many."""
        self._check_open()
        return await asyncio.to_thread(export_pending, self.path, out)

    async def checkpoint(self) -> None:
        """Copy the WAL into the database file and truncate it (frees disk space)."""
        async with self._lock:
            self._check_open()
            try:
                await self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                log.debug("checkpoint failed: %s", exc)

    # -- transactions ------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise OutboxClosedError(f"the outbox {self.path} is closed")

    async def _read(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        async with self._lock:
            self._check_open()
            try:
                return list(await self._conn.execute_fetchall(sql, params))
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox read failed: {exc}") from exc

    async def _write(
        self, body: Callable[[_Tally], Awaitable[T]], *, synchronous: Synchronous | None = None
    ) -> T:
        """Run ``body`` in one write transaction (``synchronous`` defaults to the durable
        setting, FULL).  Shielded: once started, it finishes."""
        self._check_open()
        task = asyncio.ensure_future(self._transaction(body, synchronous or self._durable))
        task.add_done_callback(_retrieve)
        return await asyncio.shield(task)

    async def _transaction(self, body: Callable[[_Tally], Awaitable[T]], synchronous: Synchronous) -> T:
        conn = self._conn
        async with self._lock:
            self._check_open()
            tally = self._tally.copy()
            disk_full = self._disk_full_unsaved
            try:
                if synchronous != self._synchronous:
                    await conn.execute(f"PRAGMA synchronous = {synchronous}")
                    self._synchronous = synchronous
                # The connection opens the transaction (BEGIN IMMEDIATE) itself before the
                # first write, in the same round trip to its thread: one hop fewer per commit.
                # Reads a body makes before its first write are outside it, which is safe:
                # this lock and the file lock make this connection the only writer.
                result = await body(tally)
                tally.runtime = self._runtime.now()
                tally.commits += 1
                tally.last_publish = self._last_publish
                tally.disk_full_count += disk_full
                await conn.execute(_UPDATE_STATE, tally.row())
                await conn.commit()
            except BaseException as exc:
                # An eviction rolled back may have moved the age deadline: check again next time.
                self._age_deadline = min(self._age_deadline, self._runtime.now())
                if conn.in_transaction:
                    try:
                        await conn.rollback()
                    except sqlite3.Error as rollback_exc:
                        log.error("outbox rollback failed: %s", rollback_exc)
                if isinstance(exc, sqlite3.Error):
                    raise OutboxError(f"outbox transaction failed: {exc}") from exc
                raise
            grew = tally.last_seq > self._tally.last_seq
            self._tally = tally
            self._disk_full_unsaved -= disk_full
            self.commits += 1
            self._publish_persisted_at = tally.runtime
            if self._tight and tally.commits % TIGHT_CHECK_COMMITS == 0:
                await self._leave_tight_if_room()
        if grew:
            self._notify()
        return result

    def _notify(self) -> None:
        self._committed.set()
        self._committed = asyncio.Event()

    async def _insert_batch(
        self, tally: _Tally, encoded: Sequence[EncodedEvent], also: Sequence[tuple[str, tuple[Any, ...]]]
    ) -> list[StoredEvent]:
        protect_from = tally.last_seq + 1
        stored = await self._insert(tally, encoded)
        for sql, params in also:
            await self._conn.execute(sql, params)
        await self._enforce_caps(tally, protect_from)
        return stored

    async def _insert(self, tally: _Tally, encoded: Sequence[EncodedEvent]) -> list[StoredEvent]:
        runtime = self._runtime.now()
        rows = Rows(encoded, tally.last_seq, runtime)
        groups, rest = rows.statements()
        if groups is not None:
            await self._conn.executemany(*groups)
        if rest is not None:
            await self._conn.execute(*rest)
        tally.last_seq = rows.last_seq
        tally.pending_bytes += rows.bytes
        tally.pending_count += len(rows.stored)
        self._age_deadline = min(self._age_deadline, runtime + self.max_age_s)
        return rows.stored

    # -- caps and eviction -------------------------------------------------------------

    async def _enforce_caps(self, tally: _Tally, protect_from: int) -> None:
        """Evict by age, then by size, never touching seqs >= ``protect_from``."""
        now = self._runtime.now()
        if now >= self._age_deadline:
            cutoff = now - LOW_WATER * self.max_age_s
            eviction = _Eviction("age_cap")
            await self._evict_scan(eviction, "runtime < ?", (cutoff,), protect_from, need=None)
            await self._finish_eviction(tally, eviction)
            self._age_deadline = await self._oldest_deadline()
        if tally.pending_bytes > self.max_bytes:
            need = tally.pending_bytes - int(LOW_WATER * self.max_bytes)
            eviction = _Eviction("size_cap")
            for lane in (codec.LANE_CODE["readings"], codec.LANE_CODE["priority"]):
                if eviction.bytes < need:
                    await self._evict_scan(eviction, "lane = ?", (lane,), protect_from, need=need)
            await self._finish_eviction(tally, eviction)

    async def _oldest_deadline(self) -> float:
        rows = list(await self._conn.execute_fetchall("SELECT min(runtime) FROM events"))
        oldest = rows[0][0]
        return NO_DEADLINE if oldest is None else float(oldest) + self.max_age_s

    async def _evict_scan(
        self, eviction: _Eviction, where: str, params: tuple[Any, ...], protect_from: int, need: int | None
    ) -> None:
        """Delete matching events oldest first until ``need`` bytes are freed (all of them if None)."""
        after = 0
        while need is None or eviction.bytes < need:
            rows = list(
                await self._conn.execute_fetchall(
                    f"SELECT seq, size, kind FROM events WHERE {where} AND seq > ? AND seq < ?"
                    f" ORDER BY seq LIMIT {SCAN_CHUNK}",
                    (*params, after, protect_from),
                )
            )
            if not rows:
                return
            taken: list[int] = []
            gaps: list[int] = []
            for seq, size, kind in rows:
                taken.append(seq)
                eviction.bytes += size
                if kind == "gap":
                    gaps.append(seq)
                if need is not None and eviction.bytes >= need:
                    break
            if gaps:
                eviction.folded += await self._ranges_of_gaps(gaps)
            taken_ranges = seq_ranges(taken)
            await self._conn.executemany("DELETE FROM events WHERE seq BETWEEN ? AND ?", taken_ranges)
            eviction.evicted += taken_ranges
            eviction.count += len(taken)
            after = taken[-1]

    async def _ranges_of_gaps(self, seqs: list[int]) -> list[ranges.Range]:
        rows = await self._conn.execute_fetchall(
            "SELECT body FROM events WHERE seq IN (SELECT value FROM json_each(?))", (codec.dumps(seqs),)
        )
        out: list[ranges.Range] = []
        for (body,) in rows:
            data = codec.decode(body, 0).envelope["data"]
            if "epoch" not in data:  # a salvaged gap speaks of its old epoch's seqs: not ours to fold
                out += [(int(a), int(b)) for a, b in data.get("evicted", [])]
        return out

    async def _finish_eviction(self, tally: _Tally, eviction: _Eviction) -> None:
        """Count the eviction, log it, and append its gap event(s) in the same transaction."""
        if not eviction.count:
            return
        evicted = ranges.merge(eviction.evicted)
        tally.pending_bytes -= eviction.bytes
        tally.pending_count -= eviction.count
        tally.count_evicted(eviction.reason, eviction.count)
        announced = ranges.merge(evicted + eviction.folded)
        gaps = [
            self.encode(
                self._own_event(
                    "gap",
                    {
                        "reason": eviction.reason,
                        "evicted": [list(r) for r in chunk],
                        "count": ranges.count(chunk),
                    },
                )
            )
            for chunk in ranges.chunks(announced)
        ]
        stored = await self._insert(tally, gaps)
        wall = self._wall()
        await self._conn.executemany(
            "INSERT INTO evictions (reason, first, last, gap_seq, wall) VALUES (?, ?, ?, ?, ?)",
            [(eviction.reason, first, last, stored[0].seq, wall) for first, last in evicted],
        )
        await self._conn.execute(
            "DELETE FROM evictions WHERE id <= (SELECT max(id) FROM evictions) - ?", (EVICTION_LOG_ROWS,)
        )
        log.warning(
            "outbox %s: evicted %d events (%d bytes) in %d seq ranges, first %s; announced by gap event seq %d",
            eviction.reason,
            eviction.count,
            eviction.bytes,
            len(evicted),
            evicted[:3],
            stored[0].seq,
        )

    async def _append_when_full(
        self,
        encoded: Sequence[EncodedEvent],
        also: Sequence[tuple[str, tuple[Any, ...]]],
        first_error: OutboxError,
    ) -> list[StoredEvent]:
        """SQLITE_FULL: release the reserve, checkpoint, evict the oldest events, retry."""
        await self._enter_tight(first_error)
        # A tenth of what is pending (hysteresis: the next appends fit too), at least twice
        # the batch; four times more at each attempt that was not enough.
        batch_bytes = sum(e.fixed_size for e in encoded)
        need = max(2 * batch_bytes, self._tally.pending_bytes // 10, DISK_FULL_MIN_EVICTION)
        last_error: BaseException = first_error
        for attempt in range(DISK_FULL_ATTEMPTS):
            await self.checkpoint()
            if attempt:
                if not await self._make_room(need):
                    break
                need *= 2
            try:
                stored = await self._write(lambda t: self._insert_batch(t, encoded, also))
            except OutboxError as exc:
                if not is_full(exc.__cause__ or exc):
                    raise
                last_error = exc
                continue
            await self._restore_reserve()
            return stored
        raise OutboxFullError(
            f"the disk is full and nothing is left to evict from {self.path}: "
            f"{len(encoded)} events were NOT committed"
        ) from last_error

    async def _make_room(self, need: int) -> bool:
        """Evict about ``need`` bytes of the oldest events and hand their pages back to the filesystem.

        In steps of ``ROOM_STEP`` bytes, each checkpointed and truncated before the next:
        on a full disk every step must fit in what the previous one gave back.
        """
        freed = 0
        while freed < need:
            step = min(need - freed, ROOM_STEP)
            try:
                evicted = await self._write(lambda t, n=step: self._evict_for_disk(t, n))  # type: ignore[misc]
            except OutboxError as exc:
                if not is_full(exc.__cause__ or exc):
                    raise
                raise OutboxFullError(
                    f"the disk is full and even evicting needs room: {exc.__cause__}"
                ) from exc
            if not evicted:
                break
            freed += evicted
            await self._vacuum()
        return freed > 0

    async def _vacuum(self) -> None:
        """Hand free pages back to the filesystem (files created with auto_vacuum=INCREMENTAL)."""
        conn = self._conn
        while True:
            async with self._lock:
                try:
                    free = next(iter(await conn.execute_fetchall("PRAGMA freelist_count")))[0]
                    if free:
                        # Python's sqlite3 steps a statement without columns once, and one
                        # step of incremental_vacuum frees one page: one execution per page.
                        await conn.execute("BEGIN IMMEDIATE")
                        await conn.executemany(
                            "PRAGMA incremental_vacuum(1)", [()] * min(free, VACUUM_STEP_PAGES)
                        )
                        await conn.commit()
                except sqlite3.Error as exc:
                    log.debug("incremental_vacuum failed: %s", exc)
                    if conn.in_transaction:
                        await conn.rollback()
                    free = 0
            await self.checkpoint()
            if free <= VACUUM_STEP_PAGES:
                return

    async def _restore_reserve(self) -> None:
        """Allocate the reserve again, evicting more if that is what it takes.  Never raises:
        it runs after the events were committed.

        First hands free pages back (a delete frees some), then evicts what the filesystem
        lacks for the reserve plus a slack (a tenth of what is pending) so the next
        transactions fit — never "the reserve's size" of
        events, which on a small outbox would be all of them.
        """
        try:
            for attempt in range(DISK_FULL_ATTEMPTS):
                if await asyncio.to_thread(self._reserve.restore):
                    return
                if attempt == 0:
                    await self._vacuum()
                    continue
                short = await asyncio.to_thread(self._reserve.shortfall)
                need = short + max(self._tally.pending_bytes // 10, DISK_FULL_MIN_EVICTION)
                if not await self._make_room(need):
                    break
        except OutboxError as exc:
            log.warning("outbox %s: could not make room for its disk-full reserve: %s", self.path, exc)
        log.warning("outbox %s: running without its disk-full reserve (no room for it)", self.path)

    async def _write_making_room(
        self, body: Callable[[_Tally], Awaitable[T]], *, synchronous: Synchronous | None = None
    ) -> T:
        """:meth:`_write` for transactions that add no events (a delete): on SQLITE_FULL,
        release the reserve and truncate the WAL, retry once, then take the reserve back."""
        try:
            return await self._write(body, synchronous=synchronous)
        except OutboxError as exc:
            if not is_full(exc.__cause__ or exc):
                raise
            await self._enter_tight(exc)
        await self.checkpoint()
        result = await self._write(body, synchronous=synchronous)
        await self._restore_reserve()
        return result

    async def _enter_tight(self, error: OutboxError) -> None:
        """The disk is full: release the reserve, and keep the WAL small from now on.

        SQLite's WAL grows up to ``wal_autocheckpoint`` pages before it is reused from its
        start; on a full disk every page it grows by is a new SQLITE_FULL.  While tight, it
        is checkpointed every few pages instead, so it reuses the room it has.
        """
        self._disk_full_unsaved += 1  # persisted by the next transaction that commits
        if self._tight:
            log.debug("outbox %s: the disk is still full (%s); making room", self.path, error.__cause__)
        else:
            log.error(
                "outbox %s: the disk is full (%s); making room, oldest readings first, until it is not",
                self.path,
                error.__cause__,
            )
            self._tight = True
            await self._set_autocheckpoint(MIN_AUTOCHECKPOINT_PAGES)
        await asyncio.to_thread(self._reserve.release)

    async def _leave_tight_if_room(self) -> None:
        """Called under the lock: back to the normal WAL once the reserve is held and a full
        WAL fits beside it."""
        try:
            if not await asyncio.to_thread(self._reserve.restore):
                return
            stat = await asyncio.to_thread(os.statvfs, self.path.parent)
            if stat.f_bavail * stat.f_frsize >= self._autocheckpoint * PAGE_SIZE + TIGHT_SLACK:
                await self._conn.execute(f"PRAGMA wal_autocheckpoint = {self._autocheckpoint}")
                self._tight = False
                log.info("outbox %s: the disk has room again", self.path)
        except (OSError, sqlite3.Error) as exc:  # the events are committed: a check must not fail them
            log.debug("outbox %s: checking for room failed: %s", self.path, exc)

    async def _set_autocheckpoint(self, pages: int) -> None:
        async with self._lock:
            self._check_open()
            await self._conn.execute(f"PRAGMA wal_autocheckpoint = {pages}")

    async def _evict_for_disk(self, tally: _Tally, need: int) -> int:
        """Evict ``need`` bytes, oldest readings first; returns the bytes evicted."""
        eviction = _Eviction("disk_full")
        protect_from = tally.last_seq + 1
        for lane in (codec.LANE_CODE["readings"], codec.LANE_CODE["priority"]):
            if eviction.bytes < need:
                await self._evict_scan(eviction, "lane = ?", (lane,), protect_from, need=need)
        await self._finish_eviction(tally, eviction)
        return eviction.bytes

    def _own_event(self, kind: Literal["gap", "status"], data: dict[str, Any]) -> NewEvent:
        return NewEvent.now(
            kind,
            None,
            data,
            boot=self.boot,
            clock=self._clock_state(),
            wall=self._wall(),
            mono=self._monotonic(),
        )


async def _nothing(tally: _Tally) -> None:
    """A transaction that only persists the state row (runtime clock, last publish)."""


def _retrieve(task: asyncio.Task[Any]) -> None:
    # The caller may have been cancelled while the shielded transaction went on.
    if not task.cancelled():
        task.exception()


def autocheckpoint_pages(reserve_bytes: int) -> int:
    """WAL pages before a checkpoint: half the disk-full reserve, so one reserve always
    leaves room to checkpoint it."""
    return max(MIN_AUTOCHECKPOINT_PAGES, reserve_bytes // (2 * PAGE_SIZE))


def _lock(path: Path) -> int:
    """An exclusive lock beside the file, held while open (the kernel drops it if we die)."""
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise OutboxLockedError(f"{path} is in use by another process (lock {lock_path})") from None
    return fd
