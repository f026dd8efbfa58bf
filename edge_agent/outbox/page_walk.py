"""Read an outbox's events straight from its b-tree leaf pages, without SQLite.

When the first sector or the first pages of a file are lost, SQLite cannot read it at all
(the schema lives on page 1 and the tables' roots near it), yet the events are still on
disk: every row of ``events`` sits in a table b-tree *leaf* page.  This walks the file (and
its ``-wal``) as SQLite pages (https://www.sqlite.org/fileformat2.html):

- a table leaf page starts with ``0x0D`` (at offset 100 on page 1), then the first
  freeblock (2 bytes), the cell count (2), the cell content start (2) and the fragmented
  bytes (1); the cell pointer array (2 bytes each) follows the 8-byte header;
- a cell is a varint payload size, a varint rowid, then the payload; a payload larger than
  the page allows keeps its head in the page and the rest in a chain of overflow pages
  (4-byte next page number, then content);
- the payload is a record: a varint header size, one varint serial type per column, then
  the values.

An outbox row (``edge_agent/outbox/schema.py``) is ``(seq = rowid, stored as NULL; lane 0|1;
kind; size; body; runtime?; unsynced?)``, and ``body`` is the envelope, whose own ``seq``
is the rowid: a row is taken only when all of that holds, so index pages, other tables and
random bytes are never mistaken for events.  The page size is not assumed (the header
that says it may be the part lost): every power of two from 512 to 65,536 is tried and
the smallest that finds the most rows wins.

A page may still hold rows deleted since (a freed page keeps its bytes): such an event
was acknowledged already and comes back as a duplicate, which the cloud removes by id.
"""

from __future__ import annotations

import json
import mmap
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PAGE_SIZES = tuple(2**n for n in range(9, 17))
_TABLE_LEAF = 0x0D
_KINDS = frozenset({"reading", "test_result", "alarm", "status", "gap"})
_WAL_MAGIC = (0x377F0682, 0x377F0683)
_WAL_HEADER = 32
_WAL_FRAME_HEADER = 24


@dataclass(frozen=True)
class WalkResult:
    page_size: int | None
    """The page size the rows were found with (None: no events found at any)."""
    rows: dict[int, str]
    """seq → body of every event found (WAL frames override the database file's pages)."""


class _Damaged(Exception):
    """A cell that does not parse (random bytes, a torn page)."""


def _varint(buf: bytes | mmap.mmap, pos: int, end: int) -> tuple[int, int]:
    """SQLite's big-endian varint at ``pos``: (value, next position)."""
    value = 0
    for i in range(9):
        if pos + i >= end:
            raise _Damaged("varint runs past the page")
        byte = buf[pos + i]
        if i == 8:
            return (value << 8) | byte, pos + 9
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, pos + i + 1
    raise _Damaged("unreachable")  # pragma: no cover


_INT_SIZES = {1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 8}


def _record(payload: bytes) -> list[object]:
    """The values of a record (only the types an outbox row uses need to be right)."""
    header_size, pos = _varint(payload, 0, len(payload))
    if not 1 <= header_size <= len(payload):
        raise _Damaged("record header size")
    types = []
    while pos < header_size:
        serial, pos = _varint(payload, pos, header_size)
        types.append(serial)
    values: list[object] = []
    pos = header_size
    for serial in types:
        if serial == 0:
            values.append(None)
        elif serial in _INT_SIZES:
            n = _INT_SIZES[serial]
            values.append(int.from_bytes(payload[pos : pos + n], "big", signed=True))
            pos += n
        elif serial == 7:
            values.append(struct.unpack(">d", payload[pos : pos + 8])[0])
            pos += 8
        elif serial in (8, 9):
            values.append(serial - 8)
        elif serial >= 12:
            n = (serial - 12) // 2
            raw = payload[pos : pos + n]
            values.append(raw.decode("utf-8") if serial % 2 else raw)
            pos += n
        else:
            raise _Damaged(f"serial type {serial}")
        if pos > len(payload):
            raise _Damaged("record runs past its payload")
    return values


class _Pages:
    """Pages of one source (the database file, or the WAL's frames) by page number."""

    def __init__(self, data: bytes | mmap.mmap, page_size: int, frames: dict[int, int] | None = None) -> None:
        self.data = data
        self.size = page_size
        self._frames = frames
        """WAL: page number → offset of its latest frame's page (None: the database file)."""

    def numbers(self) -> Iterator[int]:
        if self._frames is not None:
            yield from sorted(self._frames)
        else:
            yield from range(1, len(self.data) // self.size + 1)

    def offset(self, number: int) -> int | None:
        if self._frames is not None:
            return self._frames.get(number)
        start = (number - 1) * self.size
        return start if number >= 1 and start + self.size <= len(self.data) else None


def _overflow(pages: list[_Pages], first: int, length: int) -> bytes:
    """``length`` bytes from the overflow chain starting at page ``first``."""
    out = bytearray()
    number, seen = first, set()
    while len(out) < length:
        if number in seen or number == 0:
            raise _Damaged("overflow chain broken")
        seen.add(number)
        for source in pages:  # the WAL's newer copy first
            start = source.offset(number)
            if start is not None:
                break
        else:
            raise _Damaged("overflow page missing")
        data = source.data
        number = int.from_bytes(data[start : start + 4], "big")
        out += data[start + 4 : start + source.size][: length - len(out)]
    return bytes(out)


def _leaf_rows(source: _Pages, number: int, chain: list[_Pages]) -> Iterator[tuple[int, str]]:
    data, size = source.data, source.size
    start = source.offset(number)
    if start is None:
        return
    header = start + (100 if number == 1 else 0)
    if data[header] != _TABLE_LEAF:
        return
    cells = int.from_bytes(data[header + 3 : header + 5], "big")
    if not 0 < cells <= (size - 8) // 2:
        return
    end = start + size
    usable = size  # the outbox never reserves bytes at the end of a page
    max_local = usable - 35
    min_local = (usable - 12) * 32 // 255 - 23
    for i in range(cells):
        pointer = header + 8 + 2 * i
        cell = start + int.from_bytes(data[pointer : pointer + 2], "big")
        if not header + 8 <= cell < end:
            continue
        try:
            length, pos = _varint(data, cell, end)
            rowid, pos = _varint(data, pos, end)
            if length <= max_local:
                if pos + length > end:
                    continue
                payload = bytes(data[pos : pos + length])
            else:
                local = min_local + (length - min_local) % (usable - 4)
                if local > max_local:
                    local = min_local
                if pos + local + 4 > end:
                    continue
                next_page = int.from_bytes(data[pos + local : pos + local + 4], "big")
                payload = bytes(data[pos : pos + local]) + _overflow(chain, next_page, length - local)
            row = _event_row(rowid, _record(payload))
        except (_Damaged, UnicodeDecodeError, struct.error):
            continue
        if row is not None:
            yield row


def _event_row(rowid: int, values: list[object]) -> tuple[int, str] | None:
    """``(seq, body)`` if ``values`` are an outbox events row whose body is its envelope."""
    if not 5 <= len(values) <= 7 or values[0] is not None:
        return None
    lane, kind, size, body = values[1:5]
    if lane not in (0, 1) or kind not in _KINDS or not isinstance(size, int) or not isinstance(body, str):
        return None
    try:
        envelope = json.loads(body)
    except ValueError:
        return None
    if not isinstance(envelope, dict) or envelope.get("seq") != rowid or envelope.get("kind") != kind:
        return None
    return rowid, body


def _wal_frames(wal: bytes | mmap.mmap) -> tuple[int, dict[int, int]] | None:
    """The WAL's page size and, per page number, the offset of its last frame's page."""
    if len(wal) < _WAL_HEADER or int.from_bytes(wal[0:4], "big") not in _WAL_MAGIC:
        return None
    page_size = int.from_bytes(wal[8:12], "big")
    if page_size not in PAGE_SIZES:
        return None
    salt = wal[16:24]
    frames: dict[int, int] = {}
    pos = _WAL_HEADER
    while pos + _WAL_FRAME_HEADER + page_size <= len(wal):
        number = int.from_bytes(wal[pos : pos + 4], "big")
        if wal[pos + 8 : pos + 16] != salt:
            break  # frames of an older generation of the WAL: not ours to trust
        if number:
            frames[number] = pos + _WAL_FRAME_HEADER
        pos += _WAL_FRAME_HEADER + page_size
    return page_size, frames


def _walk(db: bytes | mmap.mmap, page_size: int, wal: _Pages | None) -> dict[int, str]:
    main = _Pages(db, page_size)
    chain = [wal, main] if wal is not None and wal.size == page_size else [main]
    rows: dict[int, str] = {}
    for source in reversed(chain):  # the database file, then the WAL's newer pages over it
        for number in source.numbers():
            rows.update(_leaf_rows(source, number, chain))
    return rows


def walk(path: Path) -> WalkResult:
    """Every outbox event found in the leaf pages of ``path`` (and ``path-wal``)."""
    wal_pages: _Pages | None = None
    wal_path = Path(f"{path}-wal")
    wal_data = wal_path.read_bytes() if wal_path.is_file() else b""
    found = _wal_frames(wal_data)
    if found is not None:
        wal_pages = _Pages(wal_data, found[0], found[1])
    with path.open("rb") as f:
        size = f.seek(0, 2)
        if size == 0:
            db: bytes | mmap.mmap = b""
        else:
            db = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            best = WalkResult(None, {})
            for page_size in PAGE_SIZES:
                if size and size < page_size and wal_pages is None:
                    break
                rows = _walk(db, page_size, wal_pages)
                # The smallest size that finds the most: a multiple of the true size finds a
                # subset of the pages, a fraction of it finds almost none.
                if len(rows) > len(best.rows):
                    best = WalkResult(page_size, rows)
            return best
        finally:
            if isinstance(db, mmap.mmap):
                db.close()
