"""The durable outbox: one SQLite file (WAL) that events are committed to before anything else.

Guarantees:

* ``append`` commits its events in ONE transaction with ``synchronous=FULL``: when it
  returns, the events survive kill -9 and power loss.  Their seqs are assigned inside that
  transaction from a counter stored in the same file (``state.last_seq``), so a seq is
  never reused, not after deletes, restarts or evictions.  See docs/DURABILITY.md for why
  FULL and not NORMAL.
* ``fetch`` sees committed events only; ``delete`` is idempotent.  ``claim`` marks
  events as being sent: no eviction takes them until they are deleted, so an event is
  never both delivered and announced evicted.  ``delete`` returns once the delete is
  committed: with ``delete_window`` it rides on the next append's transaction, or is
  committed on its own (``synchronous=NORMAL``) when no append comes within the window
  (:mod:`edge_agent.outbox.deletes`).  A delete lost on a power cut only brings an
  acknowledged event back, to be sent again (a duplicate, which the cloud removes by id),
  never a loss.
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

  Eviction passes over claimed events (those being sent) and takes the next oldest.

  Every eviction is counted (persisted), logged in ``evictions`` and announced by a
  ``gap`` event (``data = {"reason", "evicted": [[first, last], …], "count"}``); a gap
  event that is itself evicted has its ranges folded into the next one.

One connection serves everything, guarded by a lock, so a fetch never sees a transaction
half done; a write transaction runs in a task shielded from cancellation, so a cancelled
caller cannot leave it open or make the in-memory counters disagree with the file.

This module is the API and the wiring; the parts live beside it: opening.py (lock,
connection, pragmas), transactions.py (the state row, write transactions), insert.py
(the rows of an append), eviction.py (caps, gap events), disk_full.py (SQLITE_FULL,
the reserve, tight mode).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from edge_agent.events import Lane, NewEvent, StoredEvent
from edge_agent.outbox import codec
from edge_agent.outbox.codec import EncodedEvent
from edge_agent.outbox.deletes import PendingDeletes, Waiting, delete_rows, fail, resolve, seqs_of
from edge_agent.outbox.disk_full import DiskFull, failed_for_room
from edge_agent.outbox.errors import OutboxClosedError, OutboxError
from edge_agent.outbox.eviction import SCAN_CHUNK, Caps
from edge_agent.outbox.insert import insert
from edge_agent.outbox.opening import OpenFile, open_file
from edge_agent.outbox.recovery import Prepared
from edge_agent.outbox.reserve import DEFAULT_RESERVE
from edge_agent.outbox.runtime import RuntimeClock
from edge_agent.outbox.stats import OutboxStats, connect_read_only, export_pending, export_ranges, read_stats
from edge_agent.outbox.transactions import EvictionReason, Synchronous, Tally, Transactions, nothing
from edge_protocol.wire import ClockState, rfc3339_ms

log = logging.getLogger("edge_agent.outbox")

FETCH_SQL = "SELECT seq, kind, body, size FROM events WHERE lane = {lane:d} AND seq > ? AND seq < ? ORDER BY seq LIMIT ?"
"""A lane's pending events.  The lane is a literal: the priority lane's partial index
(``events_priority``) serves only ``lane = 0``; readings are read along the rowid,
skipping the few priority rows (docs/DURABILITY.md, "Flash wear")."""

PUBLISH_PERSIST_INTERVAL = 5.0
"""``record_publish`` writes at most this often on its own; otherwise it rides on the next transaction."""


class Outbox:
    """The durable outbox.  Build it with :meth:`open`; one process at a time per file."""

    epoch: str
    """Id of this database; a new database (first start, or after a quarantine) is a new epoch."""
    quarantined: Path | None
    """Where a corrupt file found at open was moved (else None)."""

    def __init__(
        self,
        file: OpenFile,
        *,
        max_bytes: int,
        max_age_s: float,
        boot: str,
        monotonic: Callable[[], float],
        wall: Callable[[], float],
        clock_state: Callable[[], ClockState],
        delete_window: float = 0.0,
    ) -> None:
        self.path = file.path
        self.epoch = file.prepared.epoch
        self.quarantined = file.prepared.quarantined
        self.boot = boot
        self._conn = file.conn
        self._lock_fd = file.lock_fd
        self._runtime = RuntimeClock(file.tally.runtime, monotonic)
        self._monotonic = monotonic
        self._wall = wall
        self._clock_state = clock_state
        self._caps = Caps(
            file.conn,
            self._runtime,
            max_bytes=max_bytes,
            max_age_s=max_age_s,
            gap_event=self._gap_event,
            wall=wall,
        )
        self._tx = Transactions(
            file.path,
            file.conn,
            file.tally,
            self._runtime,
            synchronous=file.synchronous,
            # Late-bound: the disk-full handling is itself built on these transactions.
            after_commit=self._after_commit,
            after_rollback=self._rolled_back,
        )
        self._disk_full = DiskFull(self._tx, self._caps, file.reserve, file.page_size)
        self._deletes = PendingDeletes(delete_window, self._delete_alone)
        self.gap_events = 0
        """Gap events this process committed (evictions announced), for the metrics."""
        self.gap_observers: list[Callable[[int], None]] = []
        """Called with the number of gap events each commit appended (when it appended some)."""
        self.salvaged_events = 0
        """Events salvaged into this file from quarantined ones (as of the open)."""
        self.priority_mark = 0
        """Changes whenever a transaction commits priority events (gap events included)."""
        self._priority_uncommitted = False

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
        delete_window: float = 0.0,
    ) -> Outbox:
        """Open (creating, migrating or quarantining as needed) the outbox at ``path``.

        ``clock_state`` tells whether the wall clock is synced, for the events the outbox
        makes itself (gap, status).  ``pragmas`` are applied to the connection after ours
        (tests inject ``max_page_count`` to make SQLite report a full disk).
        ``synchronous="NORMAL"`` exists for the benchmark only: it can lose committed
        events on a power cut (docs/DURABILITY.md).  ``reserve_bytes`` is the disk space
        kept back to recover from a full disk (:mod:`edge_agent.outbox.reserve`); the WAL
        is checkpointed before it outgrows half of it.  ``delete_window`` (seconds, 0: none)
        is how long a delete may wait for an append's transaction to carry it.
        """
        if max_bytes <= 0 or max_age_s <= 0:
            raise ValueError("max_bytes and max_age_s must be positive")
        if delete_window < 0:
            raise ValueError("delete_window must not be negative")

        async def start(file: OpenFile) -> Outbox:
            outbox = cls(
                file,
                max_bytes=max_bytes,
                max_age_s=max_age_s,
                boot=boot,
                monotonic=monotonic,
                wall=wall,
                clock_state=clock_state,
                delete_window=delete_window,
            )
            await outbox._after_open(file.prepared)
            return outbox

        return await open_file(
            Path(path),
            wall=wall,
            synchronous=synchronous,
            reserve_bytes=reserve_bytes,
            pragmas=pragmas,
            start=start,
        )

    async def _after_commit(self, tally: Tally) -> None:
        gaps = self._caps.committed()
        if gaps or self._priority_uncommitted:
            self.priority_mark += 1
        self._priority_uncommitted = False
        if gaps:
            self.gap_events += gaps
            for observer in self.gap_observers:
                observer(gaps)
        await self._disk_full.after_commit(tally)

    def _rolled_back(self) -> None:
        self._priority_uncommitted = False
        self._caps.rolled_back()

    async def _after_open(self, prepared: Prepared) -> None:
        await self._caps.load_deadline()
        rows = await self._tx.read("SELECT coalesce(sum(recovered), 0) FROM salvaged", ())
        self.salvaged_events = int(rows[0][0])
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
        elif self._caps.exceeded(self._tx.tally):
            # The caps may have been lowered in the configuration since the last run.
            await self._tx.write(lambda t: self._caps.enforce(t, protect_from=t.last_seq + 1))

    async def appends_done(self) -> None:
        """Nothing more will be appended (the writer has stopped): acknowledged deletes stop
        waiting for an append to carry them.  Else a clean stop, publishing what is committed,
        would see them pending for up to their window and wait it out."""
        await self._deletes.stop_waiting()

    async def close(self) -> None:
        """Persist the runtime clock and counters, checkpoint, close.  Idempotent."""
        if self._tx.closed:
            return
        try:
            await self._deletes.drain()
            await self._tx.write(nothing)
        except OutboxError as exc:
            log.warning("could not persist the outbox state at close: %s", exc)
        try:
            await self._tx.close()
        finally:
            os.close(self._lock_fd)

    # -- public API --------------------------------------------------------------------

    @property
    def max_bytes(self) -> int:
        return self._caps.max_bytes

    @property
    def max_age_s(self) -> float:
        return self._caps.max_age_s

    @property
    def commits(self) -> int:
        """Write transactions committed by this process (group commit shows here)."""
        return self._tx.commits

    @property
    def next_seq(self) -> int:
        """The seq the next committed event will get."""
        return self._tx.tally.last_seq + 1

    @property
    def pending_bytes(self) -> int:
        return self._tx.tally.pending_bytes

    @property
    def pending_count(self) -> int:
        return self._tx.tally.pending_count

    @property
    def evicted(self) -> dict[EvictionReason, int]:
        """Events evicted over the file's life, by reason (for metrics; no query)."""
        t = self._tx.tally
        return {
            "size_cap": t.evicted_size_cap,
            "age_cap": t.evicted_age_cap,
            "disk_full": t.evicted_disk_full,
        }

    @property
    def exported(self) -> int:
        """Events removed by ``buffer export --mark-exported`` over the file's life (not lost)."""
        return self._tx.tally.exported

    @property
    def disk_full_episodes(self) -> int:
        """Times the disk became full while this process ran (each one evicts until it has room)."""
        return self._disk_full.episodes

    @property
    def disk_full_errors(self) -> int:
        """``SQLITE_FULL`` errors over the file's life (several per episode)."""
        return self._tx.tally.disk_full_count + self._tx.disk_full_unsaved

    def runtime(self) -> float:
        """The outbox runtime clock now (seconds)."""
        return self._runtime.now()

    def wall(self) -> float:
        """The (injected) wall clock."""
        return self._wall()

    async def salvage_progress(self, source: str) -> int:
        """The last old seq salvaged from ``source`` (0: never), see :mod:`edge_agent.outbox.salvage`."""
        rows = await self._tx.read("SELECT last_old_seq FROM salvaged WHERE source = ?", (source,))
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
        # Acknowledged deletes waiting for a transaction ride on this one.
        carried = self._deletes.take() if encoded else []
        to_delete = seqs_of(carried)
        deleted: set[int] = set()

        async def body(tally: Tally) -> list[StoredEvent]:
            nonlocal deleted
            if to_delete:
                deleted = await delete_rows(self._conn, tally, to_delete)
            return await self._insert_batch(tally, encoded, also)

        try:
            try:
                stored = await self._tx.write(body)
            except OutboxError as exc:
                if not failed_for_room(exc):
                    raise
                stored = await self._disk_full.append_when_full(encoded, body, exc)
        except BaseException:
            self._deletes.put_back(carried)
            raise
        if carried:
            self._caps.claimed.difference_update(to_delete)
            resolve(carried, deleted)
        return stored

    async def fetch(
        self, lane: Lane, *, after_seq: int = 0, before_seq: int | None = None, limit: int = 100
    ) -> list[StoredEvent]:
        """Pending events of ``lane`` with ``after_seq < seq < before_seq``, in seq order."""
        upper = 2**63 - 1 if before_seq is None else before_seq
        rows = await self._tx.read(FETCH_SQL.format(lane=codec.LANE_CODE[lane]), (after_seq, upper, limit))
        # No decoding here: the uplink sends the stored text as it is.
        return [codec.stored(seq, kind, body, size) for seq, kind, body, size in rows]

    async def wait_for_events(self, after_seq: int, timeout: float) -> bool:
        """True as soon as a pending event with seq > ``after_seq`` exists; False after ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        known = after_seq
        while not self._tx.closed:
            if self._tx.tally.last_seq > known:
                try:
                    if await self._tx.read("SELECT 1 FROM events WHERE seq > ? LIMIT 1", (after_seq,)):
                        return True
                except OutboxClosedError:
                    return False
                known = self._tx.tally.last_seq  # all of those are gone already: wait for newer
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                async with asyncio.timeout(remaining):  # not wait_for: it can swallow a cancellation
                    await self._tx.next_commit()
            except TimeoutError:
                return False
        return False

    @property
    def eviction_mark(self) -> int:
        """Changes whenever an eviction starts deleting rows; see :meth:`claim`."""
        return self._caps.mark

    async def claim(self, seqs: Iterable[int], *, read_at: int | None = None) -> set[int]:
        """Claim events for sending; returns the seqs of ``seqs`` still in the outbox.

        From now until it is deleted, a claimed event is never evicted (no cap, no full
        disk): it may arrive, and an event must never both arrive and be announced evicted.
        The seqs not returned were evicted since they were fetched (a gap event names them)
        and must not be sent.  ``read_at`` is :attr:`eviction_mark` read before the fetch:
        if it has not moved, nothing was evicted since and the claim costs no query.
        Claims are kept in memory: they end with the process.
        """
        wanted = set(seqs)
        if read_at is not None and read_at == self._caps.mark:
            # No await before the claim is taken: no eviction can start in between.
            self._tx.check_open()
            self._caps.claimed |= wanted
            return wanted
        if not wanted:
            return wanted
        # Under the lock of the write transactions: no eviction between the look and the claim.
        async with self._tx.lock:
            self._tx.check_open()
            try:
                rows = await self._conn.execute_fetchall(
                    "SELECT seq FROM events WHERE seq IN (SELECT value FROM json_each(?))",
                    (codec.dumps(sorted(wanted)),),
                )
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox read failed: {exc}") from exc
            present = {seq for (seq,) in rows}
            self._caps.claimed |= present
        return present

    async def delete(self, seqs: Iterable[int]) -> int:
        """Delete (acknowledged) events, ending their claims; unknown seqs are ignored.
        Returns rows deleted."""
        wanted = sorted(set(seqs))
        if not wanted:
            return 0
        if self._deletes.window > 0:
            self._tx.check_open()
            # Shielded: a cancelled caller leaves its delete to be committed all the same.
            return await asyncio.shield(self._deletes.add(wanted))
        deleted = await self._disk_full.write_making_room(
            lambda tally: delete_rows(self._conn, tally, wanted), synchronous="NORMAL"
        )
        self._caps.claimed.difference_update(wanted)
        return len(deleted)

    async def _delete_alone(self, waiting: Waiting) -> None:
        """Deletes that no append carried within the window: their own transaction."""
        wanted = seqs_of(waiting)
        try:
            deleted = await self._disk_full.write_making_room(
                lambda tally: delete_rows(self._conn, tally, wanted), synchronous="NORMAL"
            )
        except BaseException as exc:
            fail(waiting, exc if isinstance(exc, Exception) else OutboxClosedError("the outbox is closing"))
            if not isinstance(exc, Exception):
                raise
            return
        self._caps.claimed.difference_update(wanted)
        resolve(waiting, deleted)

    async def record_publish(self, wall_time: float) -> None:
        """Remember the last successful publish (for stats); written at most every few seconds."""
        self._tx.last_publish = wall_time
        if self._runtime.now() - self._tx.publish_persisted_at >= PUBLISH_PERSIST_INTERVAL:
            await self._disk_full.write_making_room(nothing, synchronous="NORMAL")

    async def correct_unsynced(self, boot: str, wall_minus_mono: float) -> int:
        """Give this boot's pending ``unsynced`` events ``ts = mono + wall_minus_mono``.

        ``clock`` stays ``"unsynced"`` so downstream knows ``ts`` was derived (the envelope
        forbids extra keys); a corrected event is not corrected again.  Events of earlier
        boots cannot be corrected (their ``mono`` belongs to another boot) and keep their
        ``ts``.  Works in chunks of short transactions.  Returns events corrected.
        """
        corrected = 0
        after = 0

        async def chunk(tally: Tally) -> tuple[int, int]:
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
            after, n = await self._tx.write(chunk)
            corrected += n
            if not after:
                return corrected

    async def stats(self) -> OutboxStats:
        """Counters and sizes (read through a separate connection: appends are not held up)."""
        self._tx.check_open()
        snapshot = await asyncio.to_thread(read_stats, self.path, runtime_now=self._runtime.now())
        return dataclasses.replace(
            snapshot,
            commits_this_process=self.commits,
            last_publish=self._tx.last_publish,
            quarantined=str(self.quarantined) if self.quarantined else None,
        )

    async def export(self, out: Path) -> int:
        """Write the pending envelopes to ``out`` as JSON lines in seq order; returns how many."""
        self._tx.check_open()
        return await asyncio.to_thread(export_pending, self.path, out)

    async def mark_exported(self, out: Path) -> int:
        """Write the pending envelopes to ``out`` as :meth:`export` does, then remove exactly
        those from the outbox as exported (:meth:`Caps.remove_exported`); returns how many.

        For when the cloud imports the file (``POST /v1/import`` stores each event once):
        the file is complete and fsynced before the removal commits, so a crash between
        the two leaves the events in both places (sent twice, stored once), never in neither.
        """
        self._tx.check_open()
        written = await asyncio.to_thread(export_ranges, connect_read_only(self.path), self.path, out)
        if not written:
            return 0
        return await self._tx.write(lambda tally: self._caps.remove_exported(tally, written))

    async def checkpoint(self) -> None:
        """Copy the WAL into the database file and truncate it (frees disk space)."""
        await self._tx.checkpoint()

    # -- inside a transaction ------------------------------------------------------------

    async def _insert_batch(
        self, tally: Tally, encoded: Sequence[EncodedEvent], also: Sequence[tuple[str, tuple[Any, ...]]]
    ) -> list[StoredEvent]:
        protect_from = tally.last_seq + 1
        runtime = self._runtime.now()
        stored = await insert(self._conn, tally, encoded, runtime)
        if any(e.lane == codec.LANE_CODE["priority"] for e in encoded):
            self._priority_uncommitted = True
        self._caps.inserted(runtime)
        for sql, params in also:
            await self._conn.execute(sql, params)
        await self._caps.enforce(tally, protect_from)
        return stored

    # -- the outbox's own events -----------------------------------------------------------

    def _gap_event(self, data: dict[str, Any]) -> EncodedEvent:
        return self.encode(self._own_event("gap", data))

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

    @property
    def disk_tight(self) -> bool:
        """The disk was full and has not got room back yet: the WAL is kept small meanwhile."""
        return self._disk_full.tight
