"""Events made outside the daemon (``edge-agent test run``), handed to it through files.

Why files and not the daemon's socket or the outbox itself: only one process may hold the
outbox (its lock), and the status socket is read-only by design.  A spool file is durable
the moment the CLI returns (written, fsynced, renamed into place, directory fsynced),
whether the daemon runs or not: a running daemon takes it within a second, a stopped one
at its next start.  The event ids are given by the CLI, so a file taken twice (the daemon
died between committing its events and deleting it) is a duplicate the cloud removes by
id, never a loss.

Layout: ``{state_dir}/spool/*.json``, one JSON array of events per file
(``{"kind", "sensor", "data", "ts", "clock", "mono", "boot", "id"}``, the fields of
:class:`~edge_agent.events.NewEvent`).  A file that cannot be read as such (or holds an
event with no wire form) is moved to ``spool/bad/`` and logged, so it neither blocks the
others nor is lost.  A file whose events the outbox could not commit (busy, full) stays
for the next round: the CLI was told its results are kept.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import get_args

from edge_agent.errors import EdgeAgentError
from edge_agent.events import NewEvent
from edge_agent.outbox import codec
from edge_agent.outbox.dirs import make_durable_dir, write_durably
from edge_protocol.wire import ClockState, EventKind

log = logging.getLogger(__name__)

SPOOL_DIR = "spool"
BAD_DIR = "bad"
POLL_S = 1.0
MAX_FILE_BYTES = 4 * 2**20
"""Larger than any test run writes (a result is under 1 kB): a bigger file is not read
into a small device's memory but moved to ``bad/``."""
SPOOL_MODE = 0o2770


class SpoolError(EdgeAgentError):
    """A spool file could not be written (or read back)."""


def spool_dir(state_dir: Path) -> Path:
    return state_dir / SPOOL_DIR


def write_spool(state_dir: Path, events: Sequence[NewEvent]) -> Path:
    """Store ``events`` durably for the daemon; returns the file.  Raises :class:`SpoolError`."""
    directory = spool_dir(state_dir)
    name = f"{events[0].id if events else secrets.token_hex(8)}.json"
    final = directory / name
    body = json.dumps([asdict(e) for e in events], ensure_ascii=False).encode()
    try:
        make_durable_dir(directory)
        write_durably(final, body)
    except OSError as exc:
        raise SpoolError(f"cannot write {final}: {exc.strerror or exc}") from exc
    return final


def read_spool(path: Path) -> list[NewEvent]:
    """The events of one spool file; :class:`SpoolError` when it is not one."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise ValueError(f"larger than {MAX_FILE_BYTES} bytes")
        items = json.loads(raw)
        if not isinstance(items, list):
            raise TypeError("not a JSON array")
        events = [_event(item) for item in items]
        for event in events:
            codec.encode(event, "spool")  # refused here, not dropped by the outbox later
        return events
    except (OSError, ValueError, TypeError, KeyError, RecursionError) as exc:
        raise SpoolError(f"{path}: not a spool file ({exc})") from exc


def _event(item: object) -> NewEvent:
    if not isinstance(item, dict):
        raise TypeError("an event is not a JSON object")
    kind, clock = item["kind"], item["clock"]
    if kind not in get_args(EventKind) or clock not in get_args(ClockState):
        raise ValueError(f"kind {kind!r} or clock {clock!r} unknown")
    sensor, data = item["sensor"], item["data"]
    if not (sensor is None or isinstance(sensor, str)) or not isinstance(data, dict):
        raise TypeError("sensor or data of the wrong type")
    return NewEvent(
        kind=kind,
        sensor=sensor,
        data=data,
        ts=str(item["ts"]),
        clock=clock,
        mono=float(item["mono"]),
        boot=str(item["boot"]),
        id=str(item["id"]),
    )


async def take_spool(
    state_dir: Path, submit: Callable[[NewEvent], Awaitable[object]], done: set[str] | None = None
) -> int:
    """Commit every spooled event (oldest file first), deleting each file once its events are
    committed; returns how many events were taken.  ``submit`` answers None for an event
    it did not commit (the daemon's ``submit_or_drop``): that file stays, and the round
    ends (its events already committed come again, duplicates the cloud removes by id).  ``done`` remembers files taken but not
    deletable (made by root in a directory the daemon may not write), so they are taken once."""
    directory = spool_dir(state_dir)
    done = set() if done is None else done
    try:
        files = sorted(p for p in directory.glob("*.json") if p.is_file() and p.name not in done)
    except OSError:
        return 0
    taken = 0
    for path in files:
        try:
            events = await asyncio.to_thread(read_spool, path)
        except SpoolError as exc:
            log.error("%s; moved to %s", exc, directory / BAD_DIR)
            try:
                (directory / BAD_DIR).mkdir(exist_ok=True)
                path.rename(directory / BAD_DIR / path.name)
            except OSError:
                done.add(path.name)
            continue
        for event in events:
            if await submit(event) is None:
                return taken
            taken += 1
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            done.add(path.name)
            log.error(
                "cannot delete %s after taking its events (%s): give the daemon's user write access to %s",
                path,
                exc.strerror or exc,
                directory,
            )
    return taken


async def watch_spool(
    state_dir: Path, submit: Callable[[NewEvent], Awaitable[object]], *, poll_s: float = POLL_S
) -> None:
    """Take spooled events now and every ``poll_s`` until cancelled.

    The daemon makes the directory (group-writable, setgid) so that the CLI, run by root or
    by a member of the daemon's group, writes files the daemon may delete."""
    directory = spool_dir(state_dir)
    try:
        directory.mkdir(mode=SPOOL_MODE, exist_ok=True)
        if directory.stat().st_uid == os.geteuid():
            directory.chmod(SPOOL_MODE)  # mkdir's mode is cut by the umask
    except OSError as exc:
        log.error(
            "cannot make %s (%s): CLI test runs will not reach the cloud", directory, exc.strerror or exc
        )
    done: set[str] = set()
    while True:
        taken = await take_spool(state_dir, submit, done)
        if taken:
            log.info("took %d event(s) spooled by the CLI", taken)
        await asyncio.sleep(poll_s)
