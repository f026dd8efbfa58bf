"""Alarms with a life cycle: raised once, reminded now and then, cleared when it is over.

An alarm stands for a *condition* with a key (``test:climate-noise`` for a failing sensor
test, ``sensor:gps`` for a sensor that stays failed).  :class:`AlarmBook` is told, each
time the condition is judged, whether it holds, and answers with the ``data`` of the
``alarm`` event to send, if one is due::

    condition starts ──► "raised"   (a new alarm_id)
    still holds      ──► nothing, except a "reminder" every ``remind_every`` (same id)
    is over          ──► "cleared"  (same id, ``cleared: true``)

A judgement that could not be made (a test ``error``) is neither: an open alarm stays
open.  The book is pure (clocks injected) and knows nothing of events or the outbox; the
daemon turns what it returns into events (docs/PROTOCOL.md, "Alarms") and keeps the open
alarms in ``{state_dir}/alarms.json`` (:func:`save_records`, :func:`load_records`), so a
restart neither raises a second alarm for the same condition nor leaves one uncleared.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge_agent.outbox.dirs import fsync_dir
from edge_protocol.wire import AlarmState, rfc3339_ms, uuid7

log = logging.getLogger(__name__)

ALARMS_FILE = "alarms.json"


@dataclass
class Alarm:
    """One open alarm."""

    id: str
    key: str
    code: str
    sensor: str | None
    detail: str
    raised_at: str
    """RFC 3339 UTC wall time when it was raised."""
    raised_mono: float
    last_sent_mono: float
    reminders: int = 0
    context: dict[str, Any] = field(default_factory=dict)
    """What the alarm is about besides its sensor (``test``, ``kind``)."""

    def data(self, state: AlarmState) -> dict[str, Any]:
        """The ``data`` of the alarm event (edge_protocol.wire.AlarmData)."""
        return {
            "code": self.code,
            "alarm_id": self.id,
            "state": state,
            "cleared": state == "cleared",
            "raised_at": self.raised_at,
            "reminders": self.reminders,
            "detail": self.detail,
            **self.context,
        }

    def summary(self, now_mono: float) -> dict[str, Any]:
        """What ``edge-agent status`` shows of it."""
        return {
            "alarm_id": self.id,
            "code": self.code,
            "sensor": self.sensor,
            "raised_at": self.raised_at,
            "open_s": round(now_mono - self.raised_mono, 1),
            "reminders": self.reminders,
            "detail": self.detail,
            **self.context,
        }


class AlarmBook:
    """The open alarms of one daemon run; see the module docstring."""

    def __init__(
        self,
        remind_every: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.remind_every = remind_every
        """Seconds between reminders of an open alarm; 0 never reminds."""
        self._monotonic = monotonic
        self._wall = wall
        self._open: dict[str, Alarm] = {}

    def judged(
        self,
        key: str,
        holds: bool,
        *,
        code: str,
        sensor: str | None,
        detail: str,
        context: Mapping[str, Any] | None = None,
    ) -> tuple[Alarm, dict[str, Any]] | None:
        """The condition ``key`` was judged: the alarm and the event data to send, or None."""
        alarm = self._open.get(key)
        if holds:
            if alarm is not None:
                alarm.detail = detail  # what a reminder repeats; no event of its own
                return None
            now, wall = self._monotonic(), self._wall()
            alarm = Alarm(
                id=uuid7(int(wall * 1000)),
                key=key,
                code=code,
                sensor=sensor,
                detail=detail,
                raised_at=rfc3339_ms(datetime.fromtimestamp(wall, UTC)),
                raised_mono=now,
                last_sent_mono=now,
                context=dict(context or {}),
            )
            self._open[key] = alarm
            return alarm, alarm.data("raised")
        if alarm is None:
            return None
        del self._open[key]
        alarm.detail = detail
        return alarm, alarm.data("cleared")

    def due_reminders(self) -> list[tuple[Alarm, dict[str, Any]]]:
        """Reminders of the alarms open for another ``remind_every`` since their last event."""
        if self.remind_every <= 0:
            return []
        now = self._monotonic()
        due = []
        for alarm in self._open.values():
            if now - alarm.last_sent_mono >= self.remind_every:
                alarm.reminders += 1
                alarm.last_sent_mono = now
                due.append((alarm, alarm.data("reminder")))
        return due

    def records(self) -> list[dict[str, Any]]:
        """The open alarms as JSON-able records, their times on the wall clock (a monotonic
        time means nothing after a reboot)."""
        now, wall = self._monotonic(), self._wall()
        out = []
        for a in self.open_alarms():
            record = {k: v for k, v in vars(a).items() if k not in ("raised_mono", "last_sent_mono")}
            record["last_sent_wall"] = wall - (now - a.last_sent_mono)
            out.append(record)
        return out

    def restore(self, records: list[dict[str, Any]]) -> None:
        """Open again the alarms :meth:`records` gave (a reminder is due ``remind_every``
        after the last one sent, however long the daemon was away)."""
        now, wall = self._monotonic(), self._wall()
        for r in records:
            since_sent = max(0.0, wall - float(r["last_sent_wall"]))
            alarm = Alarm(
                id=str(r["id"]),
                key=str(r["key"]),
                code=str(r["code"]),
                sensor=None if r["sensor"] is None else str(r["sensor"]),
                detail=str(r["detail"]),
                raised_at=str(r["raised_at"]),
                raised_mono=now - max(0.0, wall - _wall_of(str(r["raised_at"]))),
                last_sent_mono=now - since_sent,
                reminders=int(r["reminders"]),
                context=dict(r.get("context") or {}),
            )
            self._open[alarm.key] = alarm

    def is_open(self, key: str) -> bool:
        return key in self._open

    def open_alarms(self) -> list[Alarm]:
        return sorted(self._open.values(), key=lambda a: a.raised_mono)

    def summaries(self) -> list[dict[str, Any]]:
        now = self._monotonic()
        return [a.summary(now) for a in self.open_alarms()]


def _wall_of(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def save_records(path: Path, records: list[dict[str, Any]]) -> None:
    """Replace ``path`` with ``records`` atomically and durably (blocking: off the loop)."""
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("w", encoding="utf-8") as f:
        json.dump(records, f, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    partial.replace(path)
    fsync_dir(path.parent)


def load_records(path: Path) -> list[dict[str, Any]]:
    """The records :func:`save_records` left; none when there is no file or it is unreadable
    (logged: the alarms are then raised again, with new ids)."""
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise ValueError("not a list of alarms")
        return records
    except FileNotFoundError:
        return []
    except (OSError, ValueError, RecursionError) as exc:  # deep nesting: the parser's recursion
        log.error("open alarms in %s unreadable (%s): conditions that still hold alarm again", path, exc)
        return []
