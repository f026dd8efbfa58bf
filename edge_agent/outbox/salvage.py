"""Recover what can still be read from a quarantined outbox file into the live outbox.

The quarantined file is never modified: it is read in place (``immutable``) or, when it
has a ``-wal`` holding its last commits or its header is damaged (a lost first sector, a
truncated file), from a copy made beside it, whose header is repaired.  Events are read in
seq order, a chunk at a time; when a damaged page makes a read fail, rows are read one at
a time up to the damage, and the damage is stepped over by probing for the next key that
can be read (exponential, then binary search), so one bad page costs the rows on it and
not the rest of the file.  The skipped old-seq ranges are reported.

When SQLite cannot read the file at all (the first sector or the first pages lost: the
schema and the tables' roots are there), or a read stepped over damage, the rows are read
from the b-tree leaf pages themselves (:mod:`edge_agent.outbox.page_walk`): all of them in
the first case, those of the skipped ranges in the second.  A rebuilt header takes the
page size those pages are laid out with.

Each recovered event keeps its original ``id`` (the cloud removes duplicates by id) and
gets a new seq in the live outbox's epoch.  A recovered ``gap`` event gets
``data["epoch"]`` = its old epoch, since its ranges are seqs of that epoch.  Progress is
committed with each batch (table ``salvaged``), so a salvage interrupted or run twice
does not add anything twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import sqlite3
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import ValidationError

from edge_agent.events import NewEvent
from edge_agent.outbox import codec, page_walk
from edge_agent.outbox.codec import EncodedEvent
from edge_agent.outbox.store import Outbox
from edge_protocol.wire import Envelope

log = logging.getLogger("edge_agent.outbox")

BATCH = 1000
_MAX_KEY = 2**62


@dataclass
class SalvageReport:
    source: Path
    old_epoch: str | None = None
    rows_read: int = 0
    recovered: int = 0
    """Events appended to the outbox by this run."""
    already_salvaged: bool = False
    """An earlier run got this far: this one resumed after it (``resumed_after`` = its last old seq)."""
    resumed_after: int = 0
    invalid: int = 0
    """Rows that could be read but were not valid envelopes (damaged content)."""
    unreadable: list[tuple[int, int | None]] = field(default_factory=list)
    """Old seq ranges that sat on damaged pages (an upper bound: some may never have existed);
    a last of None: from there to the end of the file (nothing after it could be read)."""
    error: str | None = None
    """Why reading stopped before the end of the file, if it did."""
    repairs: list[str] = field(default_factory=list)
    """What was fixed in a scratch copy to read it at all (the source is never modified)."""

    @property
    def complete(self) -> bool:
        return self.error is None and not self.unreadable and not self.invalid


class _Reader:
    """Reads ``(seq, body)`` rows of an old outbox in seq order, stepping over damage."""

    def __init__(self, conn: sqlite3.Connection, after: int) -> None:
        self.conn = conn
        self.after = after
        self.unreadable: list[tuple[int, int | None]] = []
        self.finished = False

    def epoch(self) -> str | None:
        with contextlib.suppress(sqlite3.Error):
            row = self.conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
            return str(row[0]) if row else None
        return None

    def _first_after(self, key: int, limit: int) -> list[tuple[int, str]]:
        rows = self.conn.execute(
            "SELECT seq, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (key, limit)
        ).fetchall()
        return [(int(seq), str(body)) for seq, body in rows]

    def next_rows(self, limit: int) -> list[tuple[int, str]]:
        """The next readable rows (empty: end of the file)."""
        if self.finished:
            return []
        try:
            rows = self._first_after(self.after, limit)
        except sqlite3.DatabaseError:
            rows = self._carefully(limit)
        if rows:
            self.after = rows[-1][0]
        else:
            self.finished = True
        return rows

    def _carefully(self, limit: int) -> list[tuple[int, str]]:
        out: list[tuple[int, str]] = []
        after = self.after
        while len(out) < limit:
            try:
                row = self._first_after(after, 1)
            except sqlite3.DatabaseError:
                resume = self._readable_from(after)
                # resume is None: nothing further reads, and where the file ended is unknown.
                self.unreadable.append((after + 1, resume))
                if resume is None:
                    self.finished = True
                    break
                after = resume
                continue
            if not row:
                self.finished = True
                break
            out += row
            after = row[0][0]
        self.after = after
        return out

    def _works(self, key: int) -> bool:
        try:
            self._first_after(key, 1)
        except sqlite3.DatabaseError:
            return False
        return True

    def _readable_from(self, bad: int) -> int | None:
        """Smallest key k > bad from which reading works again (None: nothing further is readable)."""
        step = 1
        while not self._works(bad + step):
            if bad + step >= _MAX_KEY:
                return None
            bad, step = bad + step, step * 2
        lo, hi = bad, bad + step  # reading after lo fails, after hi works
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._works(mid):
                hi = mid
            else:
                lo = mid
        return hi


def _probe(conn: sqlite3.Connection) -> None:
    """Raises unless the schema can be read and names an events table with bodies."""
    conn.execute("SELECT seq, body FROM events LIMIT 0").fetchall()


def _open_source(source: Path, scratch: Path) -> tuple[sqlite3.Connection, list[str]]:
    """Open ``source`` for reading without ever writing to it; returns the repairs made.

    In place (``immutable``) when it has no WAL and its schema reads; otherwise from a
    copy in ``scratch`` (with its WAL), whose header is repaired first if need be.
    """
    if not Path(f"{source}-wal").exists():
        conn = sqlite3.connect(
            source.resolve().as_uri() + "?mode=ro&immutable=1", uri=True, check_same_thread=False
        )
        try:
            _probe(conn)
            return conn, []
        except sqlite3.Error:
            conn.close()
    copy = scratch / "salvage.db"
    shutil.copyfile(source, copy)
    if Path(f"{source}-wal").exists():
        shutil.copyfile(f"{source}-wal", f"{copy}-wal")
    repairs = _repair_header(copy, has_wal=Path(f"{copy}-wal").exists())
    conn = sqlite3.connect(copy, check_same_thread=False)
    try:
        _probe(conn)
    except sqlite3.Error:
        conn.close()
        raise
    return conn, repairs


_MAGIC = b"SQLite format 3\0"
_BTREE_PAGE_TYPES = frozenset({2, 5, 10, 13})
SMALL_PAGE = 1024


def _guess_page_size(f: BinaryIO, has_wal: bool) -> int:
    """The page size of a file whose header is lost: the WAL's header says it; else 1 KiB
    (the release of issue 15 made such files) if a B-tree page starts at page 3 of that
    size, else 4 KiB (edge_agent.outbox.page_size, and every other release)."""
    if has_wal:
        with open(f"{f.name}-wal", "rb") as wal:
            head = wal.read(12)
        if len(head) == 12 and (size := struct.unpack(">I", head[8:12])[0]) in (1024, 4096):
            return int(size)
    # Page 2 is a pointer map (auto_vacuum); page 3 is the first table's root.
    # Page 3 of a 4 KiB file is at 8 KiB; 2 KiB into one is inside page 1, whose cells
    # sit at its end: zeros in a small schema, so the 1 KiB check does not take it.
    f.seek(2 * SMALL_PAGE)
    return SMALL_PAGE if _looks_like_a_btree_page(f.read(12), SMALL_PAGE) else 4096


def _looks_like_a_btree_page(head: bytes, page_size: int) -> bool:
    if len(head) < 8 or head[0] not in _BTREE_PAGE_TYPES:
        return False
    cells, content = struct.unpack(">HH", head[3:7])
    content = content or 65536
    return bool(8 + 2 * cells <= content <= page_size)


def _repair_header(path: Path, *, has_wal: bool) -> list[str]:
    """Make the 100-byte header of a copy readable: the two commonest damages are a lost
    first sector and a truncated file (whose header then promises pages that are gone)."""
    repairs: list[str] = []
    size = path.stat().st_size
    with path.open("r+b") as f:
        header = bytearray(f.read(100).ljust(100, b"\0"))
        if header[:16] != _MAGIC:
            version = 2 if has_wal else 1
            # The page size the leaf pages are laid out with (not assumed: it is a setting).
            page_size = page_walk.walk(path).page_size or _guess_page_size(f, has_wal)
            header[:] = (
                _MAGIC
                + struct.pack(
                    ">HBBBBBB", 1 if page_size == 65536 else page_size, version, version, 0, 64, 32, 32
                )
                + struct.pack(">IIII", 1, 0, 0, 0)  # change counter, size (set below), freelist
                + struct.pack(">III", 1, 4, 0)  # schema cookie, schema format 4, cache size
                + struct.pack(">IIIII", 0, 1, 0, 0, 0)  # largest root, UTF-8, user version, …
                + b"\0" * 20
                + struct.pack(">II", 1, 3040001)  # version-valid-for, SQLite version
            )
            repairs.append("rebuilt the file header (it was not SQLite's)")
        page_size = struct.unpack(">H", header[16:18])[0]
        page_size = 65536 if page_size == 1 else page_size
        pages = size // page_size
        if size % page_size:
            f.truncate(pages * page_size)
            repairs.append(f"cut a partial page at the end ({size % page_size} bytes)")
        if struct.unpack(">I", header[28:32])[0] != pages:
            repairs.append(f"database size in the header set to the {pages} pages present")
        header[28:32] = struct.pack(">I", pages)
        header[92:96] = header[24:28]  # makes SQLite trust the size just written
        f.seek(0)
        f.write(header)
    return repairs


def _to_event(body: str) -> NewEvent:
    envelope = Envelope.model_validate(codec.decode(body, 0).envelope)
    data: dict[str, Any] = dict(envelope.data)
    if envelope.kind == "gap":
        data.setdefault("epoch", envelope.epoch)
    return NewEvent(
        kind=envelope.kind,
        sensor=envelope.sensor,
        data=data,
        ts=envelope.ts,
        clock=envelope.clock,
        mono=envelope.mono if envelope.mono is not None else 0.0,
        boot=envelope.boot,
        id=envelope.id,
    )


def _events(rows: list[tuple[int, str]], into: Outbox, report: SalvageReport) -> Iterator[EncodedEvent]:
    for _, body in rows:
        try:
            event = _to_event(body)
            encoded = into.encode(event)
        except (ValueError, KeyError, TypeError, ValidationError):
            report.invalid += 1
            continue
        if report.old_epoch is None:
            report.old_epoch = str(codec.decode(body, 0).envelope.get("epoch"))
        yield encoded


def describe_ranges(seq_ranges: list[tuple[int, int | None]]) -> str:
    """``[(3, 9), (619, None)]`` → ``3–9, 619–end of file`` (for the log and the CLI)."""
    return ", ".join(f"{a}–{'end of file' if b is None else b}" for a, b in seq_ranges) or "none"


_PROGRESS = (
    "INSERT INTO salvaged (source, path, last_old_seq, recovered, wall) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (source) DO UPDATE SET path = excluded.path,"
    " last_old_seq = excluded.last_old_seq, recovered = recovered + excluded.recovered,"
    " wall = excluded.wall"
)


async def _append(
    into: Outbox, source: Path, key: str, rows: list[tuple[int, str]], report: SalvageReport
) -> None:
    """Append a batch of old rows (in old-seq order) with the progress of ``key``, in one transaction."""
    report.rows_read += len(rows)
    encoded = list(_events(rows, into, report))
    progress = (_PROGRESS, (key, str(source), rows[-1][0], len(encoded), into.wall()))
    await into.append_encoded(encoded, also=[progress])
    report.recovered += len(encoded)


def _covered(seq: int, spans: list[tuple[int, int | None]]) -> bool:
    return any(first <= seq and (last is None or seq <= last) for first, last in spans)


class _PageRows:
    """The rows :mod:`edge_agent.outbox.page_walk` finds in the file (walked once, on first use)."""

    def __init__(self, source: Path, report: SalvageReport) -> None:
        self._source = source
        self._report = report
        self._found: page_walk.WalkResult | None = None

    async def within(self, spans: list[tuple[int, int | None]] | None, why: str) -> list[tuple[int, str]]:
        """Rows in ``spans`` (None: all), in seq order."""
        if self._found is None:
            self._found = found = await asyncio.to_thread(page_walk.walk, self._source)
            self._report.repairs.append(
                f"read {len(found.rows)} events straight from its {found.page_size}-byte pages ({why})"
            )
        rows = sorted(self._found.rows.items())
        return rows if spans is None else [row for row in rows if _covered(row[0], spans)]


async def _all_from_pages(source: Path, into: Outbox, report: SalvageReport, *, batch: int, why: str) -> None:
    """SQLite could not read the file at all: every row comes from the leaf pages."""
    rows = await _PageRows(source, report).within(None, why)
    if not rows:
        report.error = f"no readable events table: {why}; no events found in its pages either"
        return
    report.old_epoch = _epoch_of(rows[0][1])
    key = f"epoch:{report.old_epoch}" if report.old_epoch else f"file:{source.name}"
    report.resumed_after = await into.salvage_progress(key)
    report.already_salvaged = report.resumed_after > 0
    rows = [row for row in rows if row[0] > report.resumed_after]
    for start in range(0, len(rows), batch):
        await _append(into, source, key, rows[start : start + batch], report)


def _epoch_of(body: str) -> str | None:
    epoch = codec.decode(body, 0).envelope.get("epoch")
    return str(epoch) if epoch else None


async def salvage(quarantined_file: Path, into: Outbox, *, batch: int = BATCH) -> SalvageReport:
    """Recover the readable events of ``quarantined_file`` into ``into``; see the module docstring."""
    source = Path(quarantined_file)
    if not source.is_file():
        raise FileNotFoundError(f"no such file: {source}")
    if source.resolve() == into.path.resolve():
        raise ValueError("cannot salvage the live outbox into itself")
    report = SalvageReport(source)
    with tempfile.TemporaryDirectory(dir=source.parent, prefix=".salvage-") as scratch:
        try:
            conn, report.repairs = await asyncio.to_thread(_open_source, source, Path(scratch))
        except (OSError, sqlite3.Error) as exc:
            # SQLite cannot read it at all (schema or roots lost): the leaf pages still hold the rows.
            try:
                await _all_from_pages(source, into, report, batch=batch, why=f"SQLite: {exc}")
            except OSError as walk_exc:
                report.error = f"no readable events table: {exc}; {walk_exc}"
            _log(report, into)
            return report
        pages = _PageRows(source, report)
        why = "for the pages SQLite could not read"
        try:
            reader = _Reader(conn, 0)
            report.old_epoch = await asyncio.to_thread(reader.epoch)
            key = f"epoch:{report.old_epoch}" if report.old_epoch else f"file:{source.name}"
            reader.after = report.resumed_after = await into.salvage_progress(key)
            report.already_salvaged = reader.after > 0
            spans_done = 0
            while True:
                try:
                    rows = await asyncio.to_thread(reader.next_rows, batch)
                except sqlite3.Error as exc:
                    report.error = f"{exc}"
                    break
                if not rows:
                    break
                if len(reader.unreadable) > spans_done:
                    # Stepped over damage: what the pages hold there goes in its old-seq place.
                    rows = sorted(rows + await pages.within(reader.unreadable[spans_done:], why))
                    spans_done = len(reader.unreadable)
                await _append(into, source, key, rows, report)
        finally:
            await asyncio.to_thread(conn.close)
        if report.error is not None:
            reader.unreadable.append((reader.after + 1, None))
        report.unreadable = reader.unreadable
        if len(reader.unreadable) > spans_done:  # damage up to the end: after everything read
            rest = await pages.within(reader.unreadable[spans_done:], why)
            for start in range(0, len(rest), batch):
                await _append(into, source, key, rest[start : start + batch], report)
    _log(report, into)
    return report


def _log(report: SalvageReport, into: Outbox) -> None:
    log.warning(
        "salvage of %s: %d events recovered into epoch %s, %d rows read, %d invalid, unreadable old seqs %s%s",
        report.source,
        report.recovered,
        into.epoch,
        report.rows_read,
        report.invalid,
        describe_ranges(report.unreadable),
        f", stopped: {report.error}" if report.error else "",
    )
