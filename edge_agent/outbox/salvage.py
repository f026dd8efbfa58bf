"""Recover what can still be read from a quarantined outbox file into the live outbox.

The quarantined file is never modified: it is read in place (``immutable``) or, when it
has a ``-wal`` holding its last commits or its header is damaged (a lost first sector, a
truncated file), from a copy made beside it, whose header is repaired.  Events are read in
seq order, a chunk at a time; when a damaged page makes a read fail, rows are read one at
a time up to the damage, and the damage is stepped over by probing for the next key that
can be read (exponential, then binary search), so one bad page costs the rows on it and
not the rest of the file.  The skipped old-seq ranges are reported.

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
from typing import Any

from pydantic import ValidationError

from edge_agent.events import NewEvent
from edge_agent.outbox import codec
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
    unreadable: list[tuple[int, int]] = field(default_factory=list)
    """Old seq ranges that sat on damaged pages (an upper bound: some may never have existed)."""
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
        self.unreadable: list[tuple[int, int]] = []
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
                self.unreadable.append((after + 1, resume if resume is not None else _MAX_KEY))
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
_PAGE_SIZE = 4096
"""The outbox never changes SQLite's default page size."""


def _repair_header(path: Path, *, has_wal: bool) -> list[str]:
    """Make the 100-byte header of a copy readable: the two commonest damages are a lost
    first sector and a truncated file (whose header then promises pages that are gone)."""
    repairs: list[str] = []
    size = path.stat().st_size
    with path.open("r+b") as f:
        header = bytearray(f.read(100).ljust(100, b"\0"))
        if header[:16] != _MAGIC:
            version = 2 if has_wal else 1
            header[:] = (
                _MAGIC
                + struct.pack(">HBBBBBB", _PAGE_SIZE, version, version, 0, 64, 32, 32)
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
            report.error = f"no readable events table: {exc}"
            return report
        try:
            reader = _Reader(conn, 0)
            report.old_epoch = await asyncio.to_thread(reader.epoch)
            key = f"epoch:{report.old_epoch}" if report.old_epoch else f"file:{source.name}"
            reader.after = report.resumed_after = await into.salvage_progress(key)
            report.already_salvaged = reader.after > 0
            while True:
                try:
                    rows = await asyncio.to_thread(reader.next_rows, batch)
                except sqlite3.Error as exc:
                    report.error = f"{exc}"
                    break
                if not rows:
                    break
                report.rows_read += len(rows)
                encoded = list(_events(rows, into, report))
                progress = (
                    "INSERT INTO salvaged (source, path, last_old_seq, recovered, wall) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (source) DO UPDATE SET path = excluded.path,"
                    " last_old_seq = excluded.last_old_seq, recovered = recovered + excluded.recovered,"
                    " wall = excluded.wall",
                    (key, str(source), rows[-1][0], len(encoded), into.wall()),
                )
                await into.append_encoded(encoded, also=[progress])
                report.recovered += len(encoded)
        finally:
            await asyncio.to_thread(conn.close)
        report.unreadable = reader.unreadable
    log.warning(
        "salvage of %s: %d events recovered into epoch %s, %d rows read, %d invalid, unreadable old seqs %s%s",
        source,
        report.recovered,
        into.epoch,
        report.rows_read,
        report.invalid,
        report.unreadable,
        f", stopped: {report.error}" if report.error else "",
    )
    return report
