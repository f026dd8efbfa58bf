"""Read-only views of an outbox file: stats and export, usable while the daemon runs.

Both open their own read-only connection (``mode=ro``): in WAL mode a reader sees the
last committed state and neither blocks the daemon's writes nor is blocked by them.  They
never write to the file, so ``edge-agent buffer stats`` is safe on a live device.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.outbox import ranges
from edge_agent.outbox.errors import OutboxError
from edge_agent.outbox.schema import SCHEMA_VERSION, SchemaError, version_of

RECENT_EVICTIONS = 20


@dataclass(frozen=True)
class EvictedRange:
    reason: str
    first: int
    last: int
    gap_seq: int | None
    """Seq of the ``gap`` event that announced it."""
    wall: float
    """Wall-clock time of the eviction (Unix seconds; as good as the clock was)."""


@dataclass(frozen=True)
class OutboxStats:
    """A snapshot of the outbox.  Ages are on the outbox runtime clock (power-off time does not count)."""

    path: str
    epoch: str
    schema_version: int
    next_seq: int
    pending: int
    pending_by_kind: dict[str, int]
    pending_by_lane: dict[str, int]
    pending_bytes: int
    """Sum of the pending envelopes' sizes: what ``storage.max_bytes`` caps."""
    db_bytes: int
    wal_bytes: int
    disk_bytes: int
    """Database + WAL + shared-memory files, as on the disk."""
    oldest_seq: int | None
    oldest_ts: str | None
    oldest_age_s: float | None
    runtime_s: float
    evicted_total: int
    evicted_by_reason: dict[str, int]
    evicted_recent: list[EvictedRange]
    """The last ``RECENT_EVICTIONS`` evicted (or exported) ranges, oldest first (the newest is last)."""
    exported: int
    """Events exported and removed (``buffer export --mark-exported``): carried out, not lost,
    so not in ``evicted_total``."""
    disk_full_count: int
    last_publish: float | None
    """Wall-clock time of the last successful publish (None: never)."""
    commits: int
    """Write transactions committed over the file's life (as last persisted)."""
    created_at: float | None
    commits_this_process: int | None = None
    """Only from a live ``Outbox.stats()``."""
    quarantined: str | None = None
    """Only from a live ``Outbox.stats()``: where a corrupt file was moved at open."""
    salvaged: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def connect_read_only(path: Path) -> sqlite3.Connection:
    if not path.exists():
        raise FileNotFoundError(f"no outbox at {path}")
    conn = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def read_stats(path: Path, *, runtime_now: float | None = None) -> OutboxStats:
    """Stats of the outbox at ``path``, read-only.  Safe while the daemon runs.

    ``runtime_now`` is the current outbox runtime (the daemon knows it); from another
    process, the runtime persisted by the last transaction is used, which is at most a
    sampling interval behind on a running daemon.
    """
    path = Path(path)
    try:
        conn = connect_read_only(path)
    except sqlite3.Error as exc:
        raise OutboxError(f"cannot open {path} read-only: {exc}") from exc
    try:
        conn.execute("BEGIN")  # one snapshot for every query below
        version = version_of(conn)
        if version != SCHEMA_VERSION:
            raise SchemaError(
                f"{path} has schema version {version}, this edge-agent reads {SCHEMA_VERSION}; "
                "start the daemon once to migrate it"
            )
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        (
            last_seq,
            runtime,
            pending_bytes,
            commits,
            ev_size,
            ev_age,
            ev_disk,
            disk_full_count,
            last_publish,
            exported,
        ) = conn.execute(
            "SELECT last_seq, runtime, pending_bytes, commits, evicted_size_cap, evicted_age_cap,"
            " evicted_disk_full, disk_full_count, last_publish, exported FROM state WHERE id = 1"
        ).fetchone()
        # One scan for both (no index covers the lane of every row any more).
        by_kind: dict[str, int] = {}
        by_lane_code: dict[int, int] = {}
        for kind, lane, n in conn.execute(
            "SELECT kind, lane, count(*) FROM events GROUP BY kind, lane ORDER BY kind"
        ).fetchall():
            by_kind[kind] = by_kind.get(kind, 0) + n
            by_lane_code[lane] = by_lane_code.get(lane, 0) + n
        oldest = conn.execute(
            "SELECT seq, runtime, json_extract(body, '$.ts') FROM events ORDER BY seq LIMIT 1"
        ).fetchone()
        # Fetched newest first (only the last few are wanted), handed back oldest first.
        recent = [
            EvictedRange(*row)
            for row in conn.execute(
                "SELECT reason, first, last, gap_seq, wall FROM evictions ORDER BY id DESC LIMIT ?",
                (RECENT_EVICTIONS,),
            )
        ][::-1]
        salvaged = [
            {"source": s, "path": p, "last_old_seq": n, "recovered": r, "wall": w}
            for s, p, n, r, w in conn.execute(
                "SELECT source, path, last_old_seq, recovered, wall FROM salvaged ORDER BY wall"
            )
        ]
        conn.execute("COMMIT")
    except SchemaError:
        raise
    except sqlite3.Error as exc:
        raise OutboxError(f"cannot read stats of {path}: {exc}") from exc
    finally:
        conn.close()
    now = float(runtime) if runtime_now is None else runtime_now
    sizes = {suffix: _size(Path(f"{path}{suffix}")) for suffix in ("", "-wal", "-shm")}
    return OutboxStats(
        path=str(path),
        epoch=meta["epoch"],
        schema_version=version,
        next_seq=last_seq + 1,
        pending=sum(by_kind.values()),
        pending_by_kind=by_kind,
        pending_by_lane={"priority": by_lane_code.get(0, 0), "readings": by_lane_code.get(1, 0)},
        pending_bytes=pending_bytes,
        db_bytes=sizes[""],
        wal_bytes=sizes["-wal"],
        disk_bytes=sum(sizes.values()),
        oldest_seq=oldest[0] if oldest else None,
        oldest_ts=oldest[2] if oldest else None,
        oldest_age_s=max(0.0, now - oldest[1]) if oldest else None,
        runtime_s=now,
        evicted_total=ev_size + ev_age + ev_disk,
        evicted_by_reason={"size_cap": ev_size, "age_cap": ev_age, "disk_full": ev_disk},
        evicted_recent=recent,
        exported=exported,
        disk_full_count=disk_full_count,
        last_publish=last_publish,
        commits=commits,
        created_at=float(meta["created_at"]) if "created_at" in meta else None,
        salvaged=salvaged,
    )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def export_pending(path: Path, out: Path) -> int:
    """Write the pending envelopes as JSON lines, in seq order; returns how many (with
    none pending, no file is written).

    Read-only and safe while the daemon runs (one statement = one consistent snapshot).
    The file appears complete or not at all: written beside ``out``, fsynced, renamed.
    An existing ``out`` is never replaced (:class:`OutboxError`): it may be an earlier
    ``--mark-exported`` file, the only copy of its events.
    """
    return ranges.count(export_ranges(connect_read_only(Path(path)), Path(path), Path(out)))


def export_ranges(conn: sqlite3.Connection, path: Path, out: Path) -> list[ranges.Range]:
    """:func:`export_pending` through ``conn`` (closed here); returns the seq ranges written,
    so that exactly those can be marked exported (``Outbox.mark_exported``)."""
    partial = out.with_name(out.name + ".part")
    written: list[ranges.Range] = []
    try:
        _refuse_existing(out)
        with partial.open("w", encoding="utf-8") as f:
            for seq, body in conn.execute("SELECT seq, body FROM events ORDER BY seq"):
                f.write(body)
                f.write("\n")
                if written and written[-1][1] == seq - 1:
                    written[-1] = (written[-1][0], seq)
                else:
                    written.append((seq, seq))
            f.flush()
            os.fsync(f.fileno())
        if not written:
            # No file for nothing: an empty one would only block the name (it is never replaced).
            partial.unlink()
            return written
        _refuse_existing(out)  # again: it may have appeared while writing
        os.replace(partial, out)
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise OutboxError(f"cannot export {path}: {exc}") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        conn.close()
    fd = os.open(out.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return written


def _refuse_existing(out: Path) -> None:
    # Checked, not linked into place (os.link): USB sticks are mostly FAT, which has no links.
    if out.exists() or out.is_symlink():
        raise OutboxError(
            f"{out} already exists: it may hold the only copy of events exported with "
            "--mark-exported; export under another name, or move that file away once it is imported"
        )
